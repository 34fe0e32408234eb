//! The built-in records' tables, one portable `diesel::table!` each for PostgreSQL and SQLite (see
//! [`sql_types`](crate::sql_types)), written the way an app writes its own.

//

diesel::table! {
    use crate::sql_types::*;

    /// Users.
    users (id) {
        /// Primary key.
        id -> Uuid,
        /// Unique handle.
        username -> Text,
        /// Unique (case-insensitively) e-mail address.
        email -> Text,
        /// Creation time.
        created_at -> Timestamptz,
        /// Last change.
        updated_at -> Timestamptz,
        /// Optimistic-locking version.
        version -> BigInt,
    }
}

diesel::table! {
    use crate::sql_types::*;

    /// Generic entities.
    entities (id) {
        /// Primary key.
        id -> Uuid,
        /// Kind.
        kind -> Text,
        /// Name.
        name -> Text,
        /// JSON object.
        attributes -> Jsonb,
        /// Creation time.
        created_at -> Timestamptz,
        /// Last change.
        updated_at -> Timestamptz,
        /// Optimistic-locking version.
        version -> BigInt,
    }
}

diesel::table! {
    use crate::sql_types::*;

    /// CRM customers.
    customers (id) {
        /// Primary key.
        id -> Uuid,
        /// Unique (case-insensitively) e-mail address.
        email -> Text,
        /// Name.
        name -> Text,
        /// Optional phone.
        phone -> Nullable<Text>,
        /// Creation time.
        created_at -> Timestamptz,
        /// Last change.
        updated_at -> Timestamptz,
        /// Optimistic-locking version.
        version -> BigInt,
    }
}

diesel::table! {
    use crate::sql_types::*;

    /// Finance ledger entries.
    transactions (id) {
        /// Primary key.
        id -> Uuid,
        /// Owner (references users).
        user_id -> Uuid,
        /// Positive amount in minor units.
        amount_minor -> BigInt,
        /// ISO currency code.
        currency -> Text,
        /// `credit` or `debit`.
        kind -> Text,
        /// Free text.
        description -> Text,
        /// When the money moved.
        occurred_at -> Timestamptz,
        /// Creation time.
        created_at -> Timestamptz,
        /// Last change.
        updated_at -> Timestamptz,
        /// Optimistic-locking version.
        version -> BigInt,
    }
}

diesel::table! {
    use crate::sql_types::*;

    /// Audit trail.
    audit_log (id) {
        /// Sequence.
        id -> BigInt,
        /// Table written.
        table_name -> Text,
        /// Row written (its key as text).
        row_id -> Text,
        /// `create`, `update` or `delete`.
        action -> Text,
        /// Who, if known.
        actor -> Nullable<Text>,
        /// When.
        at -> Timestamptz,
    }
}

diesel::joinable!(transactions -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(users, entities, customers, transactions, audit_log);
