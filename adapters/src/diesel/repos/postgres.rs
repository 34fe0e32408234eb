//! The table operations on PostgreSQL (`AsyncPgConnection`, schema `crate::diesel::schema::postgres`).

use cpc_domain::{Customer, Entity, Transaction, User, Version};
use cpc_ports::{
    CustomerField, Direction, EntityField, Field, Filter, Record, RepoError, Sort, TransactionField, UserField, Value,
};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::audit::{AuditEntry, audit_context};
use super::model::{CustomerRow, EntityRow, TransactionRow, UserRow};
use super::sql::*;
use super::values::{DbJson, DbUuid};
use crate::diesel::error::ErrorContext;
use crate::diesel::schema::postgres::{audit_log, customers, entities, transactions, users};

type Db = Pg;
type Conn = AsyncPgConnection;
const BACKEND: &str = "postgres";

all_tables!(dialect: pg);
