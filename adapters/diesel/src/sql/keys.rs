//! [`SqlKey`]: a record id as the bind value of its key column.

use cpc_domain::{CustomerId, EntityId, TransactionId, UserId};
use cpc_ports::{RecordId, ValueKind};

/// An id type a declared record may have: a UUID (made by the library) or an `i64` (assigned by the database:
/// `BIGSERIAL`, `INTEGER PRIMARY KEY`), or a newtype over one.
pub trait SqlKey: RecordId {
    /// The Rust value bound for the key column ([`DbUuid`](crate::values::DbUuid) or `i64`).
    type Bind: Send + Sync + 'static;
    /// The kind of its query values.
    const KIND: ValueKind;
    /// The id as that bind value.
    fn bind(&self) -> Self::Bind;
}

impl SqlKey for uuid::Uuid {
    type Bind = crate::values::DbUuid;
    const KIND: ValueKind = ValueKind::Uuid;
    fn bind(&self) -> Self::Bind {
        crate::values::DbUuid(*self)
    }
}

impl SqlKey for i64 {
    type Bind = i64;
    const KIND: ValueKind = ValueKind::Int;
    fn bind(&self) -> i64 {
        *self
    }
}

macro_rules! uuid_keys {
    ($($id:ty),+) => {$(
        impl SqlKey for $id {
            type Bind = crate::values::DbUuid;
            const KIND: ValueKind = ValueKind::Uuid;
            fn bind(&self) -> Self::Bind {
                crate::values::DbUuid(*self.as_uuid())
            }
        }
    )+};
}

uuid_keys!(UserId, EntityId, CustomerId, TransactionId);
