use std::borrow::Cow;

/// A value broke a rule. Names the field and the rule, so the message can be shown to whoever typed the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {rule}")]
pub struct ValidationError {
    /// The field (or parameter) that holds the bad value, e.g. `"email"`.
    pub field: Cow<'static, str>,
    /// The rule it broke, in words, e.g. `"must contain exactly one '@'"`.
    pub rule: Cow<'static, str>,
}

impl ValidationError {
    /// A validation error for `field` that broke `rule`.
    pub fn new(field: impl Into<Cow<'static, str>>, rule: impl Into<Cow<'static, str>>) -> Self {
        Self { field: field.into(), rule: rule.into() }
    }
}
