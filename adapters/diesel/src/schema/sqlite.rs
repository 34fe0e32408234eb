//! `diesel::table!` definitions matching `migrations/sqlite/` (checked by the schema drift tests). UUIDs are
//! hyphenated text, timestamps RFC 3339 text in UTC with exactly six fractional digits (so text order is time
//! order), JSON is text.

diesel::table! {
    /// Users.
    users (id) {
        /// Primary key.
        id -> Text,
        /// Unique handle.
        username -> Text,
        /// Unique (case-insensitively) e-mail address.
        email -> Text,
        /// Creation time.
        created_at -> Text,
        /// Last change.
        updated_at -> Text,
        /// Optimistic-locking version.
        version -> BigInt,
    }
}

diesel::table! {
    /// Generic entities.
    entities (id) {
        /// Primary key.
        id -> Text,
        /// Kind.
        kind -> Text,
        /// Name.
        name -> Text,
        /// JSON object.
        attributes -> Text,
        /// Creation time.
        created_at -> Text,
        /// Last change.
        updated_at -> Text,
        /// Optimistic-locking version.
        version -> BigInt,
    }
}

diesel::table! {
    /// CRM customers.
    customers (id) {
        /// Primary key.
        id -> Text,
        /// Unique (case-insensitively) e-mail address.
        email -> Text,
        /// Name.
        name -> Text,
        /// Optional phone.
        phone -> Nullable<Text>,
        /// Creation time.
        created_at -> Text,
        /// Last change.
        updated_at -> Text,
        /// Optimistic-locking version.
        version -> BigInt,
    }
}

diesel::table! {
    /// Finance ledger entries.
    transactions (id) {
        /// Primary key.
        id -> Text,
        /// Owner (references users).
        user_id -> Text,
        /// Positive amount in minor units.
        amount_minor -> BigInt,
        /// ISO currency code.
        currency -> Text,
        /// `credit` or `debit`.
        kind -> Text,
        /// Free text.
        description -> Text,
        /// When the money moved.
        occurred_at -> Text,
        /// Creation time.
        created_at -> Text,
        /// Last change.
        updated_at -> Text,
        /// Optimistic-locking version.
        version -> BigInt,
    }
}

diesel::table! {
    /// Audit trail.
    audit_log (id) {
        /// Sequence.
        id -> BigInt,
        /// Table written.
        table_name -> Text,
        /// Row written.
        row_id -> Text,
        /// `create`, `update` or `delete`.
        action -> Text,
        /// Who, if known.
        actor -> Nullable<Text>,
        /// When.
        at -> Text,
    }
}

diesel::joinable!(transactions -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(users, entities, customers, transactions, audit_log);
