//! [`RecordFixture`]: what the record contract needs to know about an app's record.

use async_trait::async_trait;
use cpc_ports::{Filter, Record, RecordStore, RepoError, Value};

/// The create form of a fixture's record.
pub type NewOf<F> = <<F as RecordFixture>::Record as Record>::New;
/// The update form of a fixture's record.
pub type UpdateOf<F> = <<F as RecordFixture>::Record as Record>::Update;
/// The field enum of a fixture's record.
pub type FieldOf<F> = <<F as RecordFixture>::Record as Record>::Field;

/// How the record contract ([`record_contract!`](crate::record_contract)) makes valid rows of an app's record,
/// and what it may expect of them.
///
/// Every case calls [`prepare`](RecordFixture::prepare) once with a tag unique to that case run, and works only
/// on the rows it makes from the returned context, so cases can share one database. The optional parts declare
/// the record's capabilities: a fixture returning `None` from [`duplicate_of`](RecordFixture::duplicate_of)
/// claims the record has no unique key, and the case checks that claim against the record
/// ([`Record::unique_keys`] must then be empty); likewise [`missing_reference`](RecordFixture::missing_reference)
/// against [`Record::REFERENCES`]. Optimistic locking is taken from [`Record::VERSIONED`].
///
/// ```
/// use async_trait::async_trait;
/// use cpc_domain::{NewUser, User};
/// use cpc_ports::{Filter, Record, RecordStore, RecordStoreExt, RepoError, Value};
/// use cpc_testkit::contract::record::RecordFixture;
///
/// // A record declared with `cpc_adapters::record!`, here shown by hand: a note owned by a user.
/// # #[derive(Debug, Clone)] pub struct Note; #[derive(Debug, Clone)] pub struct NewNote { pub owner_id: uuid::Uuid, pub title: String }
/// # #[derive(Debug, Clone, Default)] pub struct NoteChanges { pub title: Option<String> }
/// # #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)] pub enum NoteField { Id, Title, OwnerId }
/// # impl cpc_ports::Field for NoteField { fn name(self) -> &'static str { "title" } fn kind(self) -> cpc_ports::ValueKind { cpc_ports::ValueKind::Text } fn all() -> &'static [Self] { &[NoteField::Id, NoteField::Title, NoteField::OwnerId] } }
/// # impl Record for Note { type Id = uuid::Uuid; type New = NewNote; type Update = NoteChanges; type Field = NoteField;
/// #   const ENTITY: &'static str = "note"; const ID_FIELD: NoteField = NoteField::Id;
/// #   fn id(&self) -> &uuid::Uuid { unimplemented!() } fn version(&self) -> cpc_domain::Version { cpc_domain::Version::FIRST }
/// #   fn value(&self, _: NoteField) -> Value { Value::Null } fn set_id(&mut self, _: uuid::Uuid) {}
/// #   fn build(_: uuid::Uuid, _: NewNote, _: cpc_domain::Timestamp) -> Self { Note } fn apply(&mut self, _: NoteChanges) {}
/// #   fn touch(&mut self, _: cpc_domain::Version, _: cpc_domain::Timestamp) {} fn updated_at(&self) -> Option<cpc_domain::Timestamp> { None } }
///
/// struct Notes;
///
/// /// A case's tag and the user its notes belong to.
/// struct NotesCtx { tag: String, owner: User }
///
/// #[async_trait]
/// impl RecordFixture for Notes {
///     type Record = Note;
///     type Ctx = NotesCtx;
///
///     async fn prepare(&self, store: &dyn RecordStore, tag: &str) -> Result<NotesCtx, RepoError> {
///         let new = NewUser::new(tag, &format!("{tag}@example.org"))?;
///         let owner = store.repo::<User>()?.create(new).await?;
///         Ok(NotesCtx { tag: tag.to_owned(), owner })
///     }
///     fn new_row(&self, ctx: &NotesCtx, n: u32) -> NewNote {
///         NewNote { owner_id: ctx.owner.id.into(), title: format!("{}-{n:03}", ctx.tag) }
///     }
///     fn scope(&self, ctx: &NotesCtx) -> Filter<NoteField> {
///         Filter::Prefix(NoteField::Title, format!("{}-", ctx.tag))
///     }
///     fn only(&self, ctx: &NotesCtx, n: u32) -> Filter<NoteField> {
///         Filter::Eq(NoteField::Title, Value::Text(format!("{}-{n:03}", ctx.tag)))
///     }
///     fn changes(&self, ctx: &NotesCtx, n: u32) -> (NoteChanges, NoteField, Value) {
///         let title = format!("{}-{n:03}-renamed", ctx.tag);
///         (NoteChanges { title: Some(title.clone()) }, NoteField::Title, Value::Text(title))
///     }
/// }
///
/// // In a test file: one #[tokio::test] per case.
/// // cpc_testkit::record_contract!(Notes, async { my_store().await });
/// ```
#[async_trait]
pub trait RecordFixture: Send + Sync + 'static {
    /// The app's record.
    type Record: Record;
    /// What [`prepare`](RecordFixture::prepare) made: the case's tag, the parent rows its rows refer to.
    type Ctx: Send + Sync;

    /// Readies one case: creates, through `store`, any rows the record's rows refer to (e.g. a built-in user).
    /// `tag` is unique to the case run (short, lowercase letters, digits and `-`); use it in unique values.
    async fn prepare(&self, store: &dyn RecordStore, tag: &str) -> Result<Self::Ctx, RepoError>;

    /// A valid create form, distinct for each `n` (and each context): unique fields hold unique values.
    fn new_row(&self, ctx: &Self::Ctx, n: u32) -> NewOf<Self>;

    /// A filter matching exactly the rows made from `ctx` by [`new_row`](RecordFixture::new_row), and none of
    /// another case's (e.g. a prefix of the tag, or the parent's id).
    fn scope(&self, ctx: &Self::Ctx) -> Filter<FieldOf<Self>>;

    /// A filter that, within [`scope`](RecordFixture::scope), matches exactly the row made by `new_row(ctx, n)`,
    /// on one of the record's own fields (not the id).
    fn only(&self, ctx: &Self::Ctx, n: u32) -> Filter<FieldOf<Self>>;

    /// A change for the row made by `new_row(ctx, n)` that leaves it valid, with a field it changes and that
    /// field's value afterwards.
    fn changes(&self, ctx: &Self::Ctx, n: u32) -> (UpdateOf<Self>, FieldOf<Self>, Value);

    /// A create form clashing, on a unique field, with the row made by `new_row(ctx, n)` (and otherwise valid),
    /// with the field the duplicate is reported under; `None` when the record has no unique key.
    fn duplicate_of(&self, ctx: &Self::Ctx, n: u32) -> Option<(NewOf<Self>, &'static str)> {
        let _ = (ctx, n);
        None
    }

    /// A create form, valid but for referring (in the returned field) to a row that does not exist; `None` when
    /// the record refers to nothing.
    fn missing_reference(&self, ctx: &Self::Ctx, n: u32) -> Option<(NewOf<Self>, &'static str)> {
        let _ = (ctx, n);
        None
    }

    /// Tries to delete the parent row the case's rows refer to (through `store`), returning the outcome and the
    /// referring field it must be refused under; `None` when the record refers to nothing.
    async fn delete_parent(
        &self,
        store: &dyn RecordStore,
        ctx: &Self::Ctx,
    ) -> Option<(Result<bool, RepoError>, &'static str)> {
        let _ = (store, ctx);
        None
    }
}
