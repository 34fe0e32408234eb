//! [`Record`](super::Record) for the domain models, with the fields queries may use.

use chrono::SubsecRound;
use cpc_domain::{
    Customer, CustomerId, Entity, EntityId, NewCustomer, NewEntity, NewTransaction, NewUser, Timestamp, Transaction,
    TransactionId, UpdateCustomer, UpdateEntity, UpdateTransaction, UpdateUser, User, UserId, Version,
};

use super::{Field, Record, Reference, UniqueKey, Value, ValueKind};

macro_rules! fields {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $col:literal : $kind:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every field, in schema order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
        }

        impl Field for $name {
            fn name(self) -> &'static str {
                match self { $($name::$variant => $col),+ }
            }
            fn kind(self) -> ValueKind {
                match self { $($name::$variant => ValueKind::$kind),+ }
            }
            fn all() -> &'static [Self] {
                Self::ALL
            }
        }
    };
}

fields!(
    /// Queryable fields of [`User`].
    UserField {
        /// `id`
        Id => "id": Uuid,
        /// `username`
        Username => "username": Text,
        /// `email`
        Email => "email": Text,
        /// `created_at`
        CreatedAt => "created_at": Time,
        /// `updated_at`
        UpdatedAt => "updated_at": Time,
    }
);

fields!(
    /// Queryable fields of [`Entity`].
    EntityField {
        /// `id`
        Id => "id": Uuid,
        /// `kind`
        Kind => "kind": Text,
        /// `name`
        Name => "name": Text,
        /// `created_at`
        CreatedAt => "created_at": Time,
        /// `updated_at`
        UpdatedAt => "updated_at": Time,
    }
);

fields!(
    /// Queryable fields of [`Customer`].
    CustomerField {
        /// `id`
        Id => "id": Uuid,
        /// `email`
        Email => "email": Text,
        /// `name`
        Name => "name": Text,
        /// `created_at`
        CreatedAt => "created_at": Time,
        /// `updated_at`
        UpdatedAt => "updated_at": Time,
    }
);

fields!(
    /// Queryable fields of [`Transaction`].
    TransactionField {
        /// `id`
        Id => "id": Uuid,
        /// `user_id`
        UserId => "user_id": Uuid,
        /// `kind` (`"credit"` or `"debit"`)
        Kind => "kind": Text,
        /// `currency`
        Currency => "currency": Text,
        /// `amount_minor`
        AmountMinor => "amount_minor": Int,
        /// `occurred_at`
        OccurredAt => "occurred_at": Time,
        /// `created_at`
        CreatedAt => "created_at": Time,
        /// `updated_at`
        UpdatedAt => "updated_at": Time,
    }
);

/// `touch` and `updated_at`, the same for every record.
macro_rules! versioned {
    () => {
        fn touch(&mut self, version: Version, now: Timestamp) {
            self.version = version;
            self.updated_at = self.updated_at.max(now);
        }
        fn updated_at(&self) -> Option<Timestamp> {
            Some(self.updated_at)
        }
    };
}

impl Record for User {
    type Id = UserId;
    type New = NewUser;
    type Update = UpdateUser;
    type Field = UserField;
    const ENTITY: &'static str = "user";
    const ID_FIELD: UserField = UserField::Id;

    fn unique_keys(&self) -> Vec<UniqueKey> {
        vec![("username", self.username.as_str().to_owned()), ("email", self.email.normalized())]
    }

    fn id(&self) -> &UserId {
        &self.id
    }
    fn version(&self) -> Version {
        self.version
    }
    fn value(&self, field: UserField) -> Value {
        match field {
            UserField::Id => Value::Uuid(*self.id.as_uuid()),
            UserField::Username => Value::Text(self.username.as_str().to_owned()),
            UserField::Email => Value::Text(self.email.as_str().to_owned()),
            UserField::CreatedAt => Value::Time(self.created_at),
            UserField::UpdatedAt => Value::Time(self.updated_at),
        }
    }
    fn set_id(&mut self, id: UserId) {
        self.id = id;
    }
    fn build(id: UserId, new: NewUser, now: Timestamp) -> Self {
        Self { id, username: new.username, email: new.email, created_at: now, updated_at: now, version: Version::FIRST }
    }
    fn apply(&mut self, changes: UpdateUser) {
        if let Some(username) = changes.username {
            self.username = username;
        }
        if let Some(email) = changes.email {
            self.email = email;
        }
    }
    versioned!();
}

impl Record for Entity {
    type Id = EntityId;
    type New = NewEntity;
    type Update = UpdateEntity;
    type Field = EntityField;
    const ENTITY: &'static str = "entity";
    const ID_FIELD: EntityField = EntityField::Id;

    fn id(&self) -> &EntityId {
        &self.id
    }
    fn version(&self) -> Version {
        self.version
    }
    fn value(&self, field: EntityField) -> Value {
        match field {
            EntityField::Id => Value::Uuid(*self.id.as_uuid()),
            EntityField::Kind => Value::Text(self.kind.as_str().to_owned()),
            EntityField::Name => Value::Text(self.name.clone()),
            EntityField::CreatedAt => Value::Time(self.created_at),
            EntityField::UpdatedAt => Value::Time(self.updated_at),
        }
    }
    fn set_id(&mut self, id: EntityId) {
        self.id = id;
    }
    fn build(id: EntityId, new: NewEntity, now: Timestamp) -> Self {
        Self {
            id,
            kind: new.kind,
            name: new.name,
            attributes: new.attributes,
            created_at: now,
            updated_at: now,
            version: Version::FIRST,
        }
    }
    fn apply(&mut self, changes: UpdateEntity) {
        if let Some(name) = changes.name {
            self.name = name;
        }
        if let Some(attributes) = changes.attributes {
            self.attributes = attributes;
        }
    }
    versioned!();
}

impl Record for Customer {
    type Id = CustomerId;
    type New = NewCustomer;
    type Update = UpdateCustomer;
    type Field = CustomerField;
    const ENTITY: &'static str = "customer";
    const ID_FIELD: CustomerField = CustomerField::Id;

    fn unique_keys(&self) -> Vec<UniqueKey> {
        vec![("email", self.email.normalized())]
    }

    fn id(&self) -> &CustomerId {
        &self.id
    }
    fn version(&self) -> Version {
        self.version
    }
    fn value(&self, field: CustomerField) -> Value {
        match field {
            CustomerField::Id => Value::Uuid(*self.id.as_uuid()),
            CustomerField::Email => Value::Text(self.email.as_str().to_owned()),
            CustomerField::Name => Value::Text(self.name.clone()),
            CustomerField::CreatedAt => Value::Time(self.created_at),
            CustomerField::UpdatedAt => Value::Time(self.updated_at),
        }
    }
    fn set_id(&mut self, id: CustomerId) {
        self.id = id;
    }
    fn build(id: CustomerId, new: NewCustomer, now: Timestamp) -> Self {
        Self {
            id,
            email: new.email,
            name: new.name,
            phone: new.phone,
            created_at: now,
            updated_at: now,
            version: Version::FIRST,
        }
    }
    fn apply(&mut self, changes: UpdateCustomer) {
        if let Some(email) = changes.email {
            self.email = email;
        }
        if let Some(name) = changes.name {
            self.name = name;
        }
        if let Some(phone) = changes.phone {
            self.phone = phone;
        }
    }
    versioned!();
}

impl Record for Transaction {
    type Id = TransactionId;
    type New = NewTransaction;
    type Update = UpdateTransaction;
    type Field = TransactionField;
    const ENTITY: &'static str = "transaction";
    const ID_FIELD: TransactionField = TransactionField::Id;
    // ON DELETE RESTRICT: a user with ledger entries cannot be deleted.
    const REFERENCES: &'static [Reference] = &[Reference { field: "user_id", to: "user" }];

    fn id(&self) -> &TransactionId {
        &self.id
    }
    fn version(&self) -> Version {
        self.version
    }
    fn value(&self, field: TransactionField) -> Value {
        match field {
            TransactionField::Id => Value::Uuid(*self.id.as_uuid()),
            TransactionField::UserId => Value::Uuid(*self.user_id.as_uuid()),
            TransactionField::Kind => Value::Text(self.kind.as_str().to_owned()),
            TransactionField::Currency => Value::Text(self.amount.currency().as_str().to_owned()),
            TransactionField::AmountMinor => Value::Int(self.amount.amount_minor()),
            TransactionField::OccurredAt => Value::Time(self.occurred_at),
            TransactionField::CreatedAt => Value::Time(self.created_at),
            TransactionField::UpdatedAt => Value::Time(self.updated_at),
        }
    }
    fn set_id(&mut self, id: TransactionId) {
        self.id = id;
    }
    fn build(id: TransactionId, new: NewTransaction, now: Timestamp) -> Self {
        Self {
            id,
            user_id: new.user_id,
            amount: new.amount,
            kind: new.kind,
            description: new.description,
            // Stores keep microseconds.
            occurred_at: new.occurred_at.trunc_subsecs(6),
            created_at: now,
            updated_at: now,
            version: Version::FIRST,
        }
    }
    fn apply(&mut self, changes: UpdateTransaction) {
        if let Some(description) = changes.description {
            self.description = description;
        }
    }
    versioned!();
}
