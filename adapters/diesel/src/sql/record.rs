//! [`record!`](crate::record): an app's own table as a record, in one declaration.

/// Declares a model struct as a [`Record`](cpc_ports::Record) stored in a portable `diesel::table!`, on
/// PostgreSQL and SQLite: the record's field enum, its `Record` impl (building rows from the create form,
/// applying the update form, versions, timestamps, unique keys and references for the in-memory fake), and its
/// table operations ([`sql_table!`](crate::sql_table)).
///
/// The model derives Diesel's `Queryable` and `Selectable` for the table (so Diesel checks at compile time that
/// every field exists in the `table!` with a compatible type), plus `Clone` and `Debug`. Its fields are the
/// columns; the create form (`new`) has a field of the same name and type for every column in `fields` (except
/// those given a default with `= expr`); the update form (`update`) has an `Option` of each column it lists. The
/// entries after `fields` are optional, in this order:
///
/// * `version: col` (an `i64` column): optimistic locking. Without it the last write wins.
/// * `created_at: col`, `updated_at: col` (`DateTime<Utc>` columns): set by the library.
/// * `unique: { "name" => |row| Some(key) }`: the unique constraints, for the in-memory fake (the name is the
///   field a duplicate is reported under; `None` where a partial index does not apply).
/// * `references: { col => OtherRecord }`: the foreign keys (`ON DELETE RESTRICT`), for the fake and errors.
///
/// Keys: a `uuid::Uuid` key is made by the library (UUIDv7); an `i64` key is assigned by the database
/// (`BIGSERIAL` / `INTEGER PRIMARY KEY`).
///
/// ```
/// use chrono::{DateTime, Utc};
///
/// diesel::table! {
///     use cpc_diesel::sql_types::*;
///     notes (id) {
///         id -> BigInt,
///         title -> Text,
///         done -> Bool,
///         due -> Nullable<Timestamptz>,
///         version -> BigInt,
///     }
/// }
///
/// #[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable)]
/// #[diesel(table_name = notes)]
/// pub struct Note { pub id: i64, pub title: String, pub done: bool, pub due: Option<DateTime<Utc>>, pub version: i64 }
///
/// #[derive(Debug, Clone)]
/// pub struct NewNote { pub title: String, pub due: Option<DateTime<Utc>> }
///
/// #[derive(Debug, Clone, Default)]
/// pub struct NoteChanges { pub title: Option<String>, pub done: Option<bool> }
///
/// cpc_diesel::record! {
///     Note in notes as "note" {
///         key: id: i64,
///         new: NewNote,
///         update: NoteChanges { title, done },
///         fields: NoteField { title, done = false, due },
///         version: version,
///     }
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! record {
    (@init $new:ident . $col:ident) => { $new.$col };
    (@init $new:ident . $col:ident, $default:expr) => { $default };
    (@versioned []) => { false };
    (@versioned [$version:ident]) => { true };

    (
        $model:ident in $table:ident as $entity:literal {
            key: $key:ident : $idty:ty,
            new: $new:ty,
            update: $update:ty { $($ucol:ident),* $(,)? },
            fields: $fty:ident { $($col:ident $(= $default:expr)?),+ $(,)? },
            $(version: $version:ident,)?
            $(created_at: $created:ident,)?
            $(updated_at: $updated:ident,)?
            $(unique: { $($uname:literal => $ufn:expr),* $(,)? },)?
            $(references: { $($rcol:ident => $rto:ty),* $(,)? },)?
        }
    ) => {
        #[doc = concat!("The queryable fields of [`", stringify!($model), "`]: its columns.")]
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $fty {
            #[doc = concat!("`", stringify!($key), "`")]
            $key,
            $(#[doc = concat!("`", stringify!($col), "`")] $col,)+
            $(#[doc = concat!("`", stringify!($created), "`")] $created,)?
            $(#[doc = concat!("`", stringify!($updated), "`")] $updated,)?
        }

        impl $crate::sql::__private::Field for $fty {
            fn name(self) -> &'static str {
                match self {
                    Self::$key => stringify!($key),
                    $(Self::$col => stringify!($col),)+
                    $(Self::$created => stringify!($created),)?
                    $(Self::$updated => stringify!($updated),)?
                }
            }
            fn kind(self) -> $crate::sql::__private::ValueKind {
                self.kind_and_nullability().0
            }
            fn nullable(self) -> bool {
                self.kind_and_nullability().1
            }
            fn all() -> &'static [Self] {
                &[
                    Self::$key,
                    $(Self::$col,)+
                    $(Self::$created,)?
                    $(Self::$updated,)?
                ]
            }
        }

        impl $fty {
            fn kind_and_nullability(self) -> ($crate::sql::__private::ValueKind, bool) {
                use $crate::sql::__private::{key_kind, kind_of};
                match self {
                    Self::$key => key_kind(|r: &$model| &r.$key),
                    $(Self::$col => kind_of(|r: &$model| &r.$col),)+
                    $(Self::$created => kind_of(|r: &$model| &r.$created),)?
                    $(Self::$updated => kind_of(|r: &$model| &r.$updated),)?
                }
            }
        }

        impl $crate::sql::__private::Record for $model {
            type Id = $idty;
            type New = $new;
            type Update = $update;
            type Field = $fty;
            const ENTITY: &'static str = $entity;
            const ID_FIELD: $fty = $fty::$key;
            const VERSIONED: bool = $crate::record!(@versioned [$($version)?]);
            const REFERENCES: &'static [$crate::sql::__private::Reference] = &[$($(
                $crate::sql::__private::Reference {
                    field: stringify!($rcol),
                    to: <$rto as $crate::sql::__private::Record>::ENTITY,
                },
            )*)?];

            fn id(&self) -> &$idty {
                &self.$key
            }
            #[allow(unreachable_code)]
            fn version(&self) -> $crate::sql::__private::Version {
                $(return $crate::sql::__private::Version::new(self.$version);)?
                $crate::sql::__private::Version::FIRST
            }
            fn value(&self, field: $fty) -> $crate::sql::__private::Value {
                use $crate::sql::__private::{FieldValue, RecordId};
                match field {
                    $fty::$key => RecordId::to_value(&self.$key),
                    $($fty::$col => FieldValue::to_value(&self.$col),)+
                    $($fty::$created => FieldValue::to_value(&self.$created),)?
                    $($fty::$updated => FieldValue::to_value(&self.$updated),)?
                }
            }
            fn unique_keys(&self) -> Vec<$crate::sql::__private::UniqueKey> {
                #[allow(unused_mut)]
                let mut keys = Vec::new();
                $($(
                    let key: fn(&Self) -> Option<String> = $ufn;
                    if let Some(value) = key(self) {
                        keys.push(($uname, value));
                    }
                )*)?
                keys
            }
            fn set_id(&mut self, id: $idty) {
                self.$key = id;
            }
            fn build(id: $idty, new: $new, now: $crate::sql::__private::Timestamp) -> Self {
                let _ = now;
                Self {
                    $key: id,
                    $($col: $crate::record!(@init new . $col $(, $default)?),)+
                    $($version: 1,)?
                    $($created: now,)?
                    $($updated: now,)?
                }
            }
            fn apply(&mut self, changes: $update) {
                let _ = &changes;
                $(if let Some(value) = changes.$ucol {
                    self.$ucol = value;
                })*
            }
            fn touch(
                &mut self,
                version: $crate::sql::__private::Version,
                now: $crate::sql::__private::Timestamp,
            ) {
                let _ = (version, now);
                $(self.$version = version.get();)?
                $(self.$updated = self.$updated.max(now);)?
            }
            #[allow(unreachable_code)]
            fn updated_at(&self) -> Option<$crate::sql::__private::Timestamp> {
                $(return Some(self.$updated);)?
                None
            }
        }

        $crate::sql_table! {
            record: $model,
            table: $table,
            row: $model = <$model as $crate::sql::__private::diesel::SelectableHelper<Db>>::as_select() => Ok,
            key: $key,
            $(version: $version,)?
            references: [$($(stringify!($rcol)),*)?],
            fields: $fty {
                $key => $key,
                $($col => $col,)+
                $($created => $created,)?
                $($updated => $updated,)?
            },
            insert: |r: &$model| (
                $table::$key.eq($crate::sql::__private::bind_as::<$crate::sql::__private::diesel::dsl::SqlTypeOf<$table::$key>, _>(r.$key.clone())),
                $($table::$col.eq($crate::sql::__private::bind_as::<$crate::sql::__private::diesel::dsl::SqlTypeOf<$table::$col>, _>(r.$col.clone())),)+
                $($table::$version.eq($crate::sql::__private::bind_as::<$crate::sql::__private::diesel::dsl::SqlTypeOf<$table::$version>, _>(r.$version.clone())),)?
                $($table::$created.eq($crate::sql::__private::bind_as::<$crate::sql::__private::diesel::dsl::SqlTypeOf<$table::$created>, _>(r.$created.clone())),)?
                $($table::$updated.eq($crate::sql::__private::bind_as::<$crate::sql::__private::diesel::dsl::SqlTypeOf<$table::$updated>, _>(r.$updated.clone())),)?
            ),
            serial_insert: |r: &$model| (
                $($table::$col.eq($crate::sql::__private::bind_as::<$crate::sql::__private::diesel::dsl::SqlTypeOf<$table::$col>, _>(r.$col.clone())),)+
                $($table::$version.eq($crate::sql::__private::bind_as::<$crate::sql::__private::diesel::dsl::SqlTypeOf<$table::$version>, _>(r.$version.clone())),)?
                $($table::$created.eq($crate::sql::__private::bind_as::<$crate::sql::__private::diesel::dsl::SqlTypeOf<$table::$created>, _>(r.$created.clone())),)?
                $($table::$updated.eq($crate::sql::__private::bind_as::<$crate::sql::__private::diesel::dsl::SqlTypeOf<$table::$updated>, _>(r.$updated.clone())),)?
            ),
            update: |r: &$model| (
                $table::$key.eq($crate::sql::__private::bind_as::<$crate::sql::__private::diesel::dsl::SqlTypeOf<$table::$key>, _>(r.$key.clone())),
                $($table::$ucol.eq($crate::sql::__private::bind_as::<$crate::sql::__private::diesel::dsl::SqlTypeOf<$table::$ucol>, _>(r.$ucol.clone())),)*
                $($table::$version.eq($crate::sql::__private::bind_as::<$crate::sql::__private::diesel::dsl::SqlTypeOf<$table::$version>, _>(r.$version.clone())),)?
                $($table::$updated.eq($crate::sql::__private::bind_as::<$crate::sql::__private::diesel::dsl::SqlTypeOf<$table::$updated>, _>(r.$updated.clone())),)?
            ),
        }
    };
}
