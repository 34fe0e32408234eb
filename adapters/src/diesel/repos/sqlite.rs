//! The table operations on SQLite (`SyncConnectionWrapper<SqliteConnection>`, schema `crate::diesel::schema::sqlite`).

use cpc_domain::{Customer, Entity, Transaction, User, Version};
use cpc_ports::{
    CustomerField, Direction, EntityField, Field, Filter, Record, RepoError, Sort, TransactionField, UserField, Value,
};
use diesel::prelude::*;
use diesel::sqlite::Sqlite;
use diesel_async::RunQueryDsl;

use super::audit::{AuditEntry, audit_context};
use super::model::{CustomerRow, EntityRow, TransactionRow, UserRow};
use super::sql::*;
use super::values::{DbJson, DbUuid};
use crate::diesel::error::ErrorContext;
use crate::diesel::schema::sqlite::{audit_log, customers, entities, transactions, users};

type Db = Sqlite;
type Conn = crate::diesel::connection::AsyncSqliteConnection;
const BACKEND: &str = "sqlite";

all_tables!(dialect: sqlite);
