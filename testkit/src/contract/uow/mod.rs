//! The unit-of-work contract: what every [`UnitOfWork`](cpc_ports::UnitOfWork) must do, as named cases.
//!
//! The cases in the submodules are generic over the unit of work and the (non-transactional) repositories they
//! check from outside; the functions at this level run them on a [`DataPorts`] bundle, which is what
//! [`uow_contract!`](crate::uow_contract) takes. Cases only ever write through one open unit at a time, except
//! [`concurrency::concurrent_units_taking_the_same_email_commit_exactly_once`], so they pass on backends that
//! make a second writer wait for the first.

pub mod concurrency;
pub mod failures;
pub mod nesting;
pub mod visibility;

use cpc_domain::{NewUser, Version};
use cpc_ports::{RepoError, Tx};

use crate::contract::repository::{DataPorts, on_data_ports};

/// The error a unit of work (or a nested one) in these cases gives up with on purpose.
#[derive(Debug)]
enum Abandon {
    Repo(#[expect(dead_code, reason = "shown by Debug when an assertion fails")] RepoError),
    OnPurpose,
}

impl From<RepoError> for Abandon {
    fn from(e: RepoError) -> Self {
        Self::Repo(e)
    }
}

/// The panic payload of the cases that panic inside a unit of work, to check that this very panic propagates.
#[derive(Debug)]
struct DeliberatePanic;

/// The work of those cases: creates `new` in `tx`, then panics with [`DeliberatePanic`] (written so the compiler
/// does not see the panic as unconditional).
async fn create_then_panic(tx: &dyn Tx, new: NewUser) -> Result<(), RepoError> {
    let user = tx.users().create(new).await?;
    if user.version == Version::FIRST {
        std::panic::panic_any(DeliberatePanic);
    }
    Ok(())
}

/// Asserts that a unit's work unwound with [`DeliberatePanic`] and the panic reached the caller.
fn assert_deliberate_panic<T>(unwound: std::thread::Result<T>) {
    let payload = unwound.err().expect("the panic must reach the caller");
    assert!(payload.downcast_ref::<DeliberatePanic>().is_some(), "the original panic payload propagates");
}

on_data_ports! {
    visibility::committed_writes_are_visible(uow, users, transactions);
    visibility::rolled_back_writes_are_gone(uow, users, transactions);
    visibility::a_dropped_transaction_rolls_back(uow, users, transactions);
    visibility::writes_are_invisible_outside_before_commit(uow, users, transactions);
    visibility::a_transaction_sees_its_own_writes(uow, users, transactions);
    visibility::a_transaction_can_free_and_retake_a_unique_email(uow, users, transactions);
    failures::an_error_inside_run_rolls_back_every_write(uow, users, transactions);
    failures::a_panic_inside_run_rolls_back_and_propagates(uow, users, transactions);
    failures::a_conflict_inside_a_transaction_surfaces_and_nothing_is_kept(uow, users, transactions);
    failures::repositories_of_a_finished_transaction_fail(uow, users, transactions);
    failures::a_validation_error_inside_run_keeps_nothing(uow, users, transactions);
    concurrency::concurrent_units_taking_the_same_email_commit_exactly_once(uow, users, transactions);
    concurrency::sequential_units_keep_counts_exact(uow, users, transactions);
    nesting::a_nested_rollback_keeps_the_outer_writes(uow, users, transactions);
    nesting::a_nested_commit_then_outer_rollback_keeps_nothing(uow, users, transactions);
    nesting::a_nested_commit_then_outer_commit_keeps_everything(uow, users, transactions);
    nesting::a_dropped_nested_transaction_rolls_back_to_its_savepoint(uow, users, transactions);
    nesting::two_levels_of_nesting_unwind_one_at_a_time(uow, users, transactions);
    nesting::repositories_of_a_finished_nested_transaction_fail(uow, users, transactions);
    nesting::only_the_innermost_open_transaction_may_be_used(uow, users, transactions);
    nesting::a_unique_violation_inside_a_nested_transaction_leaves_the_outer_usable(uow, users, transactions);
    nesting::nested_runs_commit_on_ok_and_roll_back_on_err_or_panic(uow, users, transactions);
}

/// Runs the unit-of-work contract: one `#[tokio::test]` per case, named after it. `$factory` is an async
/// expression yielding something that derefs to a [`DataPorts`] (e.g. `Arc<DataPorts>`), evaluated per case.
#[macro_export]
macro_rules! uow_contract {
    ($factory:expr) => {
        $crate::__data_contract_cases!(
            $crate::contract::uow,
            uow_contract_runs_every_case,
            $factory,
            [
                committed_writes_are_visible,
                rolled_back_writes_are_gone,
                a_dropped_transaction_rolls_back,
                writes_are_invisible_outside_before_commit,
                a_transaction_sees_its_own_writes,
                a_transaction_can_free_and_retake_a_unique_email,
                an_error_inside_run_rolls_back_every_write,
                a_panic_inside_run_rolls_back_and_propagates,
                a_conflict_inside_a_transaction_surfaces_and_nothing_is_kept,
                repositories_of_a_finished_transaction_fail,
                a_validation_error_inside_run_keeps_nothing,
                concurrent_units_taking_the_same_email_commit_exactly_once,
                sequential_units_keep_counts_exact,
                a_nested_rollback_keeps_the_outer_writes,
                a_nested_commit_then_outer_rollback_keeps_nothing,
                a_nested_commit_then_outer_commit_keeps_everything,
                a_dropped_nested_transaction_rolls_back_to_its_savepoint,
                two_levels_of_nesting_unwind_one_at_a_time,
                repositories_of_a_finished_nested_transaction_fail,
                only_the_innermost_open_transaction_may_be_used,
                a_unique_violation_inside_a_nested_transaction_leaves_the_outer_usable,
                nested_runs_commit_on_ok_and_roll_back_on_err_or_panic,
            ]
        );
    };
}
