//! The record contract: the repository and unit-of-work behaviour every store must show for ANY record an app
//! declares (with `cpc_adapters::record!`), run on the app's own record through a small [`RecordFixture`].
//!
//! [`record_contract!`](crate::record_contract) generates one `#[tokio::test]` per case, named after it. The
//! cases take the store as a [`RecordStore`](cpc_ports::RecordStore) (the Diesel `DbManager`, the in-memory fake), the app's record
//! registered with it; each case prepares its own parent rows under a fresh tag and touches only its own rows,
//! so cases may share one database.
//!
//! Cases that depend on what the record has do not pass silently when it lacks it: the unique-key, reference
//! and parent-deletion cases then check that the record indeed declares no unique key or reference, and the
//! stale-version case checks that an unversioned record takes the last write.

mod fixture;
pub mod repository;
mod support;
pub mod uow;

pub use fixture::{FieldOf, NewOf, RecordFixture, UpdateOf};

/// Defines, for each `module::case`, a `pub async fn case(fixture, store)` running it, and `CASES`.
macro_rules! on_record_fixture {
    ($($module:ident :: $case:ident;)+) => {
        $(
            #[doc = concat!("Runs [`", stringify!($module), "::", stringify!($case), "`].")]
            pub async fn $case<F: RecordFixture>(fixture: &F, store: &dyn cpc_ports::RecordStore) {
                $module::$case(fixture, store).await
            }
        )+

        /// The name of every case, for checking that [`record_contract!`](crate::record_contract) runs them all.
        #[doc(hidden)]
        pub const CASES: &[&str] = &[$(stringify!($case)),+];
    };
}

on_record_fixture! {
    repository::create_returns_the_row_with_first_version;
    repository::find_by_id_round_trips_and_unknown_ids_are_none;
    repository::create_many_is_all_or_nothing;
    repository::update_changes_fields_and_bumps_the_version;
    repository::stale_version_is_refused_or_the_last_write_wins;
    repository::update_of_an_unknown_id_is_not_found;
    repository::delete_exists_and_count_agree;
    repository::duplicate_unique_is_a_conflict_naming_the_field;
    repository::missing_reference_is_a_validation_error_naming_the_field;
    repository::deleting_a_referenced_parent_is_refused_naming_the_field;
    repository::keyset_paging_by_id_walks_every_row_once;
    repository::offset_paging_reports_the_total;
    repository::a_filter_on_a_field_finds_exactly_its_row;
    uow::committed_rows_are_visible;
    uow::rolled_back_rows_are_gone;
    uow::a_dropped_unit_rolls_back;
    uow::a_rolled_back_savepoint_undoes_only_its_rows;
    uow::an_app_row_and_a_user_commit_and_roll_back_together;
}

/// Runs the record contract on an app's record: one `#[tokio::test]` per case, named after it, plus
/// `record_contract_runs_every_case`, checking that none is left out.
///
/// `$fixture` is an expression giving the [`RecordFixture`] (evaluated per case); `$store` an async expression
/// giving something that derefs to a [`RecordStore`](cpc_ports::RecordStore) with the record registered (e.g.
/// `Arc<dyn RecordStore>`), evaluated per case: a fresh store each time, or one shared (cases keep to their
/// own rows). Put each invocation in its own module to run it on several stores.
///
/// ```no_run
/// # mod demo {
/// # use std::sync::Arc;
/// # use cpc_ports::RecordStore;
/// # struct Notes;
/// # #[async_trait::async_trait]
/// # impl cpc_testkit::contract::record::RecordFixture for Notes {
/// #     type Record = cpc_domain::User; type Ctx = ();
/// #     async fn prepare(&self, _: &dyn RecordStore, _: &str) -> Result<(), cpc_ports::RepoError> { Ok(()) }
/// #     fn new_row(&self, _: &(), _: u32) -> cpc_domain::NewUser { unimplemented!() }
/// #     fn scope(&self, _: &()) -> cpc_ports::Filter<cpc_ports::UserField> { unimplemented!() }
/// #     fn only(&self, _: &(), _: u32) -> cpc_ports::Filter<cpc_ports::UserField> { unimplemented!() }
/// #     fn changes(&self, _: &(), _: u32) -> (cpc_domain::UpdateUser, cpc_ports::UserField, cpc_ports::Value) { unimplemented!() }
/// # }
/// # async fn my_store() -> Arc<dyn RecordStore> { unimplemented!() }
/// mod on_my_database {
///     use super::*;
///     cpc_testkit::record_contract!(Notes, my_store());
/// }
/// # }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! record_contract {
    ($fixture:expr, $store:expr) => {
        $crate::record_contract!(@cases $fixture, $store, [
            create_returns_the_row_with_first_version,
            find_by_id_round_trips_and_unknown_ids_are_none,
            create_many_is_all_or_nothing,
            update_changes_fields_and_bumps_the_version,
            stale_version_is_refused_or_the_last_write_wins,
            update_of_an_unknown_id_is_not_found,
            delete_exists_and_count_agree,
            duplicate_unique_is_a_conflict_naming_the_field,
            missing_reference_is_a_validation_error_naming_the_field,
            deleting_a_referenced_parent_is_refused_naming_the_field,
            keyset_paging_by_id_walks_every_row_once,
            offset_paging_reports_the_total,
            a_filter_on_a_field_finds_exactly_its_row,
            committed_rows_are_visible,
            rolled_back_rows_are_gone,
            a_dropped_unit_rolls_back,
            a_rolled_back_savepoint_undoes_only_its_rows,
            an_app_row_and_a_user_commit_and_roll_back_together,
        ]);
    };
    (@cases $fixture:expr, $store:expr, [$($case:ident),+ $(,)?]) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = $store.await;
                let fixture = $fixture;
                $crate::contract::record::$case(&fixture, &*store).await;
            }
        )+

        #[test]
        fn record_contract_runs_every_case() {
            $crate::contract::repository::assert_every_case_listed(
                "record",
                &[$(stringify!($case)),+],
                $crate::contract::record::CASES,
            );
        }
    };
}
