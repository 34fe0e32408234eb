//! The repository contract: what every implementation of the data ports ([`UserRepository`],
//! [`EntityRepository`], [`CustomerRepository`], [`TransactionRepository`]) must do, as named cases.
//!
//! The cases in the submodules are generic (`users: &R` with `R: UserRepository + ?Sized`), so they run against
//! a concrete repository and `dyn` ones alike. The functions at this level run them on a [`DataPorts`] bundle,
//! which is what [`repository_contract!`](crate::repository_contract) takes, so that an adapter can hand out one
//! isolated database (or schema) per case:
//!
//! ```no_run
//! mod memory_repository {
//!     use cpc_testkit::{contract::repository::DataPorts, memory::InMemoryDatabase};
//!     cpc_testkit::repository_contract!(async { std::sync::Arc::new(DataPorts::from(&InMemoryDatabase::new())) });
//! }
//! ```
//!
//! Cases keep to their own rows (every username and e-mail starts with a random tag), so they also pass on a
//! database shared between cases. Text they sort on is lowercase ASCII letters and digits, so any collation
//! orders it the same way.

pub(crate) mod fixtures;

pub mod customers;
pub mod queries;
pub mod transactions;
pub mod users;

use std::sync::Arc;

use cpc_ports::{CustomerRepository, EntityRepository, TransactionRepository, UnitOfWork, UserRepository};

use crate::memory::InMemoryDatabase;

/// Every data port of one database: what the repository and unit-of-work suites run against.
#[derive(Clone)]
pub struct DataPorts {
    /// Users.
    pub users: Arc<dyn UserRepository>,
    /// Generic entities.
    pub entities: Arc<dyn EntityRepository>,
    /// CRM customers.
    pub customers: Arc<dyn CustomerRepository>,
    /// Finance transactions (referring to `users`).
    pub transactions: Arc<dyn TransactionRepository>,
    /// Transactions over all of the above.
    pub uow: Arc<dyn UnitOfWork>,
}

impl std::fmt::Debug for DataPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPorts").finish_non_exhaustive()
    }
}

impl From<&InMemoryDatabase> for DataPorts {
    fn from(db: &InMemoryDatabase) -> Self {
        Self {
            users: Arc::new(db.users()),
            entities: Arc::new(db.entities()),
            customers: Arc::new(db.customers()),
            transactions: Arc::new(db.transactions()),
            uow: Arc::new(db.unit_of_work()),
        }
    }
}

/// Defines, for each `module::case(port fields)`, a `pub async fn case(ports: &DataPorts)` running it, and
/// `CASES`, the list of their names.
macro_rules! on_data_ports {
    ($($module:ident :: $case:ident ( $($port:ident),+ );)+) => {
        $(
            #[doc = concat!("Runs [`", stringify!($module), "::", stringify!($case), "`] on the ports.")]
            pub async fn $case(ports: &DataPorts) {
                $module::$case($(&*ports.$port),+).await
            }
        )+

        /// The name of every case, for checking that a suite macro runs them all.
        #[doc(hidden)]
        pub const CASES: &[&str] = &[$(stringify!($case)),+];

        /// Every case with its name, to run them all in one test (on one server that is expensive to start).
        pub fn all() -> Vec<(&'static str, $crate::contract::repository::Case)> {
            vec![$((stringify!($case), (|ports| Box::pin($case(ports))) as $crate::contract::repository::Case)),+]
        }
    };
}

/// One case of a suite on [`DataPorts`], as listed by `all()` in [`repository`](self) and
/// [`uow`](crate::contract::uow).
pub type Case = for<'a> fn(&'a DataPorts) -> futures::future::BoxFuture<'a, ()>;
pub(crate) use on_data_ports;

on_data_ports! {
    users::create_returns_the_row_with_first_version_and_timestamps(users);
    users::find_by_id_round_trips_and_unknown_ids_are_none(users);
    users::duplicate_email_in_another_case_is_a_conflict_naming_email(users);
    users::duplicate_username_is_a_conflict_naming_username(users);
    users::find_by_username_is_exact(users);
    users::create_many_is_all_or_nothing(users);
    users::update_bumps_the_version_and_changes_fields(users);
    users::stale_version_update_is_refused_and_changes_nothing(users);
    users::update_of_an_unknown_id_is_not_found(users);
    users::update_to_a_taken_email_is_a_duplicate_conflict(users);
    users::delete_exists_and_count_agree(users);
    queries::filters_combine_with_and(customers);
    queries::prefix_filters_take_wildcards_literally(customers);
    queries::sorts_break_ties_by_id_ascending(customers);
    queries::offset_paging_reports_the_total_and_slices_in_order(customers);
    queries::keyset_paging_walks_every_row_once(customers);
    queries::keyset_cursor_is_none_exactly_when_no_rows_follow(customers);
    queries::keyset_paging_is_stable_under_inserts(customers);
    queries::filters_of_the_wrong_kind_are_validation_errors(users);
    queries::page_sizes_outside_1_to_1000_are_validation_errors(users);
    queries::garbled_cursors_are_validation_errors(customers);
    customers::odd_text_is_stored_verbatim_and_found_by_filters(customers);
    customers::customer_email_is_unique_and_found_ignoring_case(customers);
    customers::customer_update_changes_only_given_fields(customers);
    customers::find_by_kind_orders_by_name_then_id(entities);
    customers::entity_attributes_round_trip_and_are_replaced_whole(entities);
    customers::upsert_creates_then_replaces_keeping_created_at(entities);
    customers::concurrent_upserts_of_one_id_leave_one_consistent_row(entities);
    transactions::transaction_for_an_unknown_user_is_a_validation_error_on_user_id(users, transactions);
    transactions::deleting_a_user_with_transactions_is_a_validation_error_on_user_id(users, transactions);
    transactions::history_is_half_open_newest_first_and_per_user(users, transactions);
    transactions::history_pages_with_keyset_and_offset(users, transactions);
    transactions::transaction_fields_round_trip_and_filter(users, transactions);
}

/// Panics unless `listed` (the cases a suite macro runs) and `all` (the cases its module defines) are the same.
#[doc(hidden)]
pub fn assert_every_case_listed(suite: &str, listed: &[&str], all: &[&str]) {
    let missing: Vec<_> = all.iter().filter(|c| !listed.contains(c)).collect();
    let unknown: Vec<_> = listed.iter().filter(|c| !all.contains(c)).collect();
    assert!(missing.is_empty() && unknown.is_empty(), "{suite}: not run: {missing:?}; not defined: {unknown:?}");
}

/// Runs the listed cases of `$module` on `$factory` (see [`__contract_cases!`](crate::__contract_cases)) plus a
/// test, `$check`, that the list names every case `$module::CASES` holds.
#[doc(hidden)]
#[macro_export]
macro_rules! __data_contract_cases {
    ($module:path, $check:ident, $factory:expr, [$($case:ident),+ $(,)?]) => {
        $crate::__contract_cases!($module, $factory, [$($case),+]);

        #[test]
        fn $check() {
            use $module as suite;
            $crate::contract::repository::assert_every_case_listed(
                stringify!($module),
                &[$(stringify!($case)),+],
                suite::CASES,
            );
        }
    };
}

/// Runs the repository contract: one `#[tokio::test]` per case, named after it. `$factory` is an async
/// expression yielding something that derefs to a [`DataPorts`] (e.g. `Arc<DataPorts>`), evaluated per case.
#[macro_export]
macro_rules! repository_contract {
    ($factory:expr) => {
        $crate::__data_contract_cases!(
            $crate::contract::repository,
            repository_contract_runs_every_case,
            $factory,
            [
                create_returns_the_row_with_first_version_and_timestamps,
                find_by_id_round_trips_and_unknown_ids_are_none,
                duplicate_email_in_another_case_is_a_conflict_naming_email,
                duplicate_username_is_a_conflict_naming_username,
                find_by_username_is_exact,
                create_many_is_all_or_nothing,
                update_bumps_the_version_and_changes_fields,
                stale_version_update_is_refused_and_changes_nothing,
                update_of_an_unknown_id_is_not_found,
                update_to_a_taken_email_is_a_duplicate_conflict,
                delete_exists_and_count_agree,
                filters_combine_with_and,
                prefix_filters_take_wildcards_literally,
                sorts_break_ties_by_id_ascending,
                offset_paging_reports_the_total_and_slices_in_order,
                keyset_paging_walks_every_row_once,
                keyset_cursor_is_none_exactly_when_no_rows_follow,
                keyset_paging_is_stable_under_inserts,
                filters_of_the_wrong_kind_are_validation_errors,
                page_sizes_outside_1_to_1000_are_validation_errors,
                garbled_cursors_are_validation_errors,
                odd_text_is_stored_verbatim_and_found_by_filters,
                customer_email_is_unique_and_found_ignoring_case,
                customer_update_changes_only_given_fields,
                find_by_kind_orders_by_name_then_id,
                entity_attributes_round_trip_and_are_replaced_whole,
                upsert_creates_then_replaces_keeping_created_at,
                concurrent_upserts_of_one_id_leave_one_consistent_row,
                transaction_for_an_unknown_user_is_a_validation_error_on_user_id,
                deleting_a_user_with_transactions_is_a_validation_error_on_user_id,
                history_is_half_open_newest_first_and_per_user,
                history_pages_with_keyset_and_offset,
                transaction_fields_round_trip_and_filter,
            ]
        );
    };
}
