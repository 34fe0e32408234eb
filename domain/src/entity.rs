use serde::{Deserialize, Serialize};
use std::fmt;

use crate::customer::validate_name;
use crate::{EntityId, Timestamp, ValidationError, Version};

/// The kind of a generic [`Entity`]: 1 to 64 lowercase ASCII letters, digits, `_`, `-` or `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EntityKind(String);

impl EntityKind {
    /// Parses a kind such as `"invoice"` or `"sheet.chart"`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.');
        if s.is_empty() || s.len() > 64 || !s.chars().all(ok_char) {
            return Err(ValidationError::new("kind", "must be 1 to 64 lowercase letters, digits, '_', '-' or '.'"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The kind as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EntityKind {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<EntityKind> for String {
    fn from(k: EntityKind) -> Self {
        k.0
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The generic record: a kind, a name and free-form JSON attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// Unique id.
    pub id: EntityId,
    /// What sort of thing this is.
    pub kind: EntityKind,
    /// Display name, 1 to 200 characters.
    pub name: String,
    /// Free-form attributes; always a JSON object.
    pub attributes: serde_json::Value,
    /// When the row was created.
    pub created_at: Timestamp,
    /// When the row was last changed.
    pub updated_at: Timestamp,
    /// Optimistic-locking version.
    pub version: Version,
}

impl Entity {
    /// Takes the kind, name and attributes of `new` (an upsert replacing the entity); the id, timestamps and
    /// version are the store's to manage.
    pub fn replace_with(&mut self, new: NewEntity) {
        (self.kind, self.name, self.attributes) = (new.kind, new.name, new.attributes);
    }
}

/// What it takes to create an [`Entity`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEntity {
    /// What sort of thing this is.
    pub kind: EntityKind,
    /// Display name.
    pub name: String,
    /// Attributes; a JSON object.
    pub attributes: serde_json::Value,
}

impl NewEntity {
    /// Validates raw input: `kind` per [`EntityKind::parse`], a non-blank name, attributes that are a JSON object.
    pub fn new(kind: &str, name: &str, attributes: serde_json::Value) -> Result<Self, ValidationError> {
        Ok(Self {
            kind: EntityKind::parse(kind)?,
            name: validate_name(name)?,
            attributes: validate_attributes(attributes)?,
        })
    }
}

/// A partial change to an [`Entity`]; attributes, when given, replace the old ones whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateEntity {
    /// A new name.
    pub name: Option<String>,
    /// New attributes (a JSON object).
    pub attributes: Option<serde_json::Value>,
}

impl UpdateEntity {
    /// Validates a change of name and/or attributes.
    pub fn new(name: Option<&str>, attributes: Option<serde_json::Value>) -> Result<Self, ValidationError> {
        Ok(Self {
            name: name.map(validate_name).transpose()?,
            attributes: attributes.map(validate_attributes).transpose()?,
        })
    }
}

fn validate_attributes(v: serde_json::Value) -> Result<serde_json::Value, ValidationError> {
    if v.is_object() { Ok(v) } else { Err(ValidationError::new("attributes", "must be a JSON object")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entity_rules() {
        assert!(NewEntity::new("sheet.chart", "Q3", json!({"rows": 3})).is_ok());
        assert_eq!(NewEntity::new("Sheet", "Q3", json!({})).unwrap_err().field, "kind");
        assert_eq!(NewEntity::new("sheet", "", json!({})).unwrap_err().field, "name");
        assert_eq!(NewEntity::new("sheet", "Q3", json!([1])).unwrap_err().field, "attributes");
        assert_eq!(UpdateEntity::new(None, Some(json!(3))).unwrap_err().field, "attributes");
    }
}
