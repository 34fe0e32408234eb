//! Connection managers that do nothing, for bare bb8, deadpool and the cpc pool, so a bench measures pool
//! overhead alone (`#[path = "common/noop.rs"] mod noop;`).

#![allow(dead_code)]

use std::convert::Infallible;

use cpc_adapters::pool::{Backend, DatabaseError};

/// A bb8 manager whose connections are `()`.
pub struct NoopBb8;
impl bb8::ManageConnection for NoopBb8 {
    type Connection = ();
    type Error = Infallible;
    async fn connect(&self) -> Result<(), Infallible> {
        Ok(())
    }
    async fn is_valid(&self, _: &mut ()) -> Result<(), Infallible> {
        Ok(())
    }
    fn has_broken(&self, _: &mut ()) -> bool {
        false
    }
}

/// A deadpool manager whose connections are `()`.
pub struct NoopDeadpool;
impl deadpool::managed::Manager for NoopDeadpool {
    type Type = ();
    type Error = Infallible;
    async fn create(&self) -> Result<(), Infallible> {
        Ok(())
    }
    async fn recycle(
        &self,
        _: &mut (),
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}

/// A cpc pool backend whose connections are `()`.
pub struct NoopBackend;
impl Backend for NoopBackend {
    type Conn = ();
    const NAME: &'static str = "noop";
    async fn connect(&self) -> Result<(), DatabaseError> {
        Ok(())
    }
    async fn ping(&self, _: &mut ()) -> Result<(), DatabaseError> {
        Ok(())
    }
    fn is_broken(&self, _: &mut ()) -> bool {
        false
    }
    async fn server_version(&self, _: &mut ()) -> Result<String, DatabaseError> {
        Ok("noop".into())
    }
    fn address(&self) -> String {
        "noop".into()
    }
}
