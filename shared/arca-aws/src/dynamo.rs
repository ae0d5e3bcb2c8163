//! [`ItemStore`] on one DynamoDB table (single-table design).
//!
//! # Table shape
//!
//! `template.yaml` must declare exactly this (it is what [`create_table`] creates):
//!
//! ```text
//! AttributeDefinitions: PK S, SK S, GSI1PK S, GSI1SK S, GSI2PK S, GSI2SK S, GSI3PK S, GSI3SK S
//! KeySchema:            PK HASH, SK RANGE
//! BillingMode:          PAY_PER_REQUEST
//! GlobalSecondaryIndexes:
//!   GSI1: GSI1PK HASH, GSI1SK RANGE, Projection ALL
//!   GSI2: GSI2PK HASH, GSI2SK RANGE, Projection ALL
//!   GSI3: GSI3PK HASH, GSI3SK RANGE, Projection ALL
//! TimeToLiveSpecification: AttributeName ttl, Enabled true
//! ```
//!
//! Each item stores `PK`, `SK`, `GSI<n>PK`/`GSI<n>SK` for n = 1, 2, 3 (only when the
//! item has that index key: the indexes are sparse), `version` (N), `ttl` (N, unix
//! seconds, only with `expires_at`) and `body` (S, the JSON document).
//!
//! # Differences from the embedded store the port allows
//!
//! - DynamoDB's `Limit` caps the items *evaluated*, and a page also stops at 1 MB, so a
//!   page can be shorter than `limit`. When the last page fills `limit` exactly, DynamoDB
//!   still returns a cursor and the next page is empty with no cursor. Callers loop
//!   until the cursor is `None`, never until a short page.
//! - Gets and table queries are strongly consistent. Index queries cannot be (DynamoDB
//!   refuses `ConsistentRead` on a GSI), so in AWS a write shows up in an index a moment
//!   later; moto, like redb, shows it at once.
//! - Items expire (TTL) up to a couple of days after `expires_at`; until then they are
//!   returned like any other item.

use std::collections::HashMap;
use std::time::Duration;

use arca_core::ports::item_store::{
    Condition, Cursor, Index, IndexKey, Item, ItemStore, Page, Query, SortKeyRange, Write,
};
use arca_core::store::checks::{check_batch_get, check_item, check_key, check_query, check_transaction};
use arca_core::{Error, Result};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, KeysAndAttributes, Projection, ProjectionType, Put, ScalarAttributeType, TimeToLiveSpecification,
    TransactWriteItem,
};

use crate::errors::{classify, transaction_canceled};

const PK: &str = "PK";
const SK: &str = "SK";
const VERSION: &str = "version";
const TTL: &str = "ttl";
const BODY: &str = "body";

/// The index name and its key attributes.
fn index_names(index: Index) -> (&'static str, &'static str, &'static str) {
    match index {
        Index::Gsi1 => ("GSI1", "GSI1PK", "GSI1SK"),
        Index::Gsi2 => ("GSI2", "GSI2PK", "GSI2SK"),
        Index::Gsi3 => ("GSI3", "GSI3PK", "GSI3SK"),
    }
}

type AttributeMap = HashMap<String, AttributeValue>;

/// The storage port on one DynamoDB table of the shape documented in this module.
#[derive(Clone, Debug)]
pub struct DynamoItemStore {
    client: Client,
    table: String,
}

impl DynamoItemStore {
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        Self {
            client,
            table: table_name.into(),
        }
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// What a missing table is reported as.
    fn what(&self) -> String {
        format!("DynamoDB table {}", self.table)
    }
}

/// Creates a table of the shape this adapter expects (see the module docs), waits until it
/// is active and enables TTL on `ttl`. For tests and local tooling; deployed tables come
/// from `template.yaml`.
pub async fn create_table(client: &Client, name: &str) -> Result<()> {
    let what = format!("DynamoDB table {name}");
    let built = |e: aws_sdk_dynamodb::error::BuildError| Error::permanent(e);
    let string_attribute = |attribute: &str| {
        AttributeDefinition::builder()
            .attribute_name(attribute)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(built)
    };
    let key = |attribute: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(attribute)
            .key_type(key_type)
            .build()
            .map_err(built)
    };

    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute(PK)?)
        .attribute_definitions(string_attribute(SK)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?);
    for index in Index::ALL {
        let (index_name, pk, sk) = index_names(index);
        request = request
            .attribute_definitions(string_attribute(pk)?)
            .attribute_definitions(string_attribute(sk)?)
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(index_name)
                    .key_schema(key(pk, KeyType::Hash)?)
                    .key_schema(key(sk, KeyType::Range)?)
                    .projection(Projection::builder().projection_type(ProjectionType::All).build())
                    .build()
                    .map_err(built)?,
            );
    }
    request.send().await.map_err(|e| classify(e, &what))?;

    client
        .wait_until_table_exists()
        .table_name(name)
        .wait(Duration::from_secs(300))
        .await
        .map_err(|e| Error::transient(format!("waiting for {what} to become active: {e}")))?;

    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL)
                .enabled(true)
                .build()
                .map_err(built)?,
        )
        .send()
        .await
        .map_err(|e| classify(e, &what))?;
    Ok(())
}

// ----- items <-> attributes ------------------------------------------------------------

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn table_key(pk: &str, sk: &str) -> AttributeMap {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

fn to_attributes(item: &Item) -> Result<AttributeMap> {
    let mut attributes = table_key(&item.pk, &item.sk);
    for index in Index::ALL {
        if let Some(key) = item.index_key(index) {
            let (_, pk, sk) = index_names(index);
            attributes.insert(pk.to_owned(), s(&key.pk));
            attributes.insert(sk.to_owned(), s(&key.sk));
        }
    }
    attributes.insert(VERSION.to_owned(), AttributeValue::N(item.version.to_string()));
    if let Some(expires_at) = item.expires_at {
        attributes.insert(TTL.to_owned(), AttributeValue::N(expires_at.to_string()));
    }
    let body = serde_json::to_string(&item.body).map_err(Error::permanent)?;
    attributes.insert(BODY.to_owned(), AttributeValue::S(body));
    Ok(attributes)
}

fn malformed(what: String) -> Error {
    Error::permanent(format!("malformed item in DynamoDB: {what}"))
}

fn string_attribute(attributes: &AttributeMap, name: &str) -> Result<Option<String>> {
    match attributes.get(name) {
        None => Ok(None),
        Some(AttributeValue::S(value)) => Ok(Some(value.clone())),
        Some(other) => Err(malformed(format!("{name} is not a string: {other:?}"))),
    }
}

fn required_string(attributes: &AttributeMap, name: &str) -> Result<String> {
    string_attribute(attributes, name)?.ok_or_else(|| malformed(format!("{name} is missing")))
}

fn number_attribute<T: std::str::FromStr>(attributes: &AttributeMap, name: &str) -> Result<Option<T>> {
    match attributes.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(value)) => value
            .parse()
            .map(Some)
            .map_err(|_| malformed(format!("{name} is not an integer: {value}"))),
        Some(other) => Err(malformed(format!("{name} is not a number: {other:?}"))),
    }
}

fn index_key_of(attributes: &AttributeMap, index: Index) -> Result<Option<IndexKey>> {
    let (_, pk, sk) = index_names(index);
    match (string_attribute(attributes, pk)?, string_attribute(attributes, sk)?) {
        (Some(pk), Some(sk)) => Ok(Some(IndexKey { pk, sk })),
        (None, None) => Ok(None),
        _ => Err(malformed(format!("only half of the {pk}/{sk} key"))),
    }
}

fn from_attributes(attributes: &AttributeMap) -> Result<Item> {
    let body = required_string(attributes, BODY)?;
    Ok(Item {
        pk: required_string(attributes, PK)?,
        sk: required_string(attributes, SK)?,
        gsi1: index_key_of(attributes, Index::Gsi1)?,
        gsi2: index_key_of(attributes, Index::Gsi2)?,
        gsi3: index_key_of(attributes, Index::Gsi3)?,
        version: number_attribute(attributes, VERSION)?.ok_or_else(|| malformed(format!("{VERSION} is missing")))?,
        expires_at: number_attribute(attributes, TTL)?,
        body: serde_json::from_str(&body).map_err(|e| malformed(format!("{BODY} is not JSON: {e}")))?,
    })
}

// ----- expressions -----------------------------------------------------------------------

/// An expression with its placeholders; empty maps are sent as absent (DynamoDB refuses
/// empty `ExpressionAttributeNames`/`Values`).
#[derive(Debug, Default, PartialEq)]
struct Expression {
    text: String,
    names: HashMap<String, String>,
    values: AttributeMap,
}

impl Expression {
    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<AttributeMap> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

/// The ConditionExpression for `condition`, or `None` when unconditional.
fn condition_expression(condition: Condition) -> Option<Expression> {
    let pk_name = || HashMap::from([("#pk".to_owned(), PK.to_owned())]);
    match condition {
        Condition::None => None,
        Condition::NotExists => Some(Expression {
            text: "attribute_not_exists(#pk)".into(),
            names: pk_name(),
            values: HashMap::new(),
        }),
        Condition::Exists => Some(Expression {
            text: "attribute_exists(#pk)".into(),
            names: pk_name(),
            values: HashMap::new(),
        }),
        // An absent item has no `version`, so the comparison is false for it: this is
        // "exists and has version v", as the port says.
        Condition::Version(v) => Some(Expression {
            text: "#version = :version".into(),
            names: HashMap::from([("#version".to_owned(), VERSION.to_owned())]),
            values: HashMap::from([(":version".to_owned(), AttributeValue::N(v.to_string()))]),
        }),
    }
}

/// A ConditionCheck must carry an expression; an unconditional check is one that always
/// holds, so it still occupies its position (and its key) in the transaction.
fn check_expression(condition: Condition) -> Expression {
    condition_expression(condition).unwrap_or_else(|| Expression {
        text: "attribute_exists(#pk) OR attribute_not_exists(#pk)".into(),
        names: HashMap::from([("#pk".to_owned(), PK.to_owned())]),
        values: HashMap::new(),
    })
}

/// The KeyConditionExpression of a query, or `None` when no item can match (DynamoDB
/// refuses empty strings as key values, so those cases are answered without a call).
fn key_condition(index: Option<Index>, pk: &str, range: &SortKeyRange) -> Result<Option<Expression>> {
    let (pk_attribute, sk_attribute) = match index {
        None => (PK, SK),
        Some(index) => {
            let (_, pk, sk) = index_names(index);
            (pk, sk)
        }
    };
    let mut names = HashMap::from([("#pk".to_owned(), pk_attribute.to_owned())]);
    let mut values = HashMap::from([(":pk".to_owned(), s(pk))]);
    let mut text = "#pk = :pk".to_owned();
    let mut sort = |condition: &str, bounds: &[(&str, &str)]| {
        names.insert("#sk".to_owned(), sk_attribute.to_owned());
        for (placeholder, value) in bounds {
            values.insert((*placeholder).to_owned(), s(value));
        }
        text.push_str(" AND ");
        text.push_str(condition);
    };
    match range {
        SortKeyRange::All => {}
        SortKeyRange::BeginsWith(prefix) if prefix.is_empty() => {}
        SortKeyRange::BeginsWith(prefix) => sort("begins_with(#sk, :from)", &[(":from", prefix)]),
        // Sort keys are never empty, so nothing is below "" and everything is above it.
        SortKeyRange::LessThan(bound) if bound.is_empty() => return Ok(None),
        SortKeyRange::LessThan(bound) => sort("#sk < :to", &[(":to", bound)]),
        SortKeyRange::Between(from, to) if from > to => {
            return Err(Error::invalid(
                "range",
                format!("Between({from:?}, {to:?}): from is after to"),
            ));
        }
        SortKeyRange::Between(_, to) if to.is_empty() => return Ok(None),
        SortKeyRange::Between(from, to) if from.is_empty() => sort("#sk <= :to", &[(":to", to)]),
        SortKeyRange::Between(from, to) => sort("#sk BETWEEN :from AND :to", &[(":from", from), (":to", to)]),
    }
    Ok(Some(Expression { text, names, values }))
}

// ----- cursors -----------------------------------------------------------------------------

/// The ExclusiveStartKey a cursor stands for: the table key, plus the index key for an
/// index query (DynamoDB wants exactly the attributes its LastEvaluatedKey had).
fn start_key(index: Option<Index>, cursor: &Cursor) -> Result<AttributeMap> {
    let mut key = table_key(&cursor.pk, &cursor.sk);
    if let Some(index) = index {
        let Some(index_key) = &cursor.index_key else {
            return Err(Error::invalid(
                "cursor",
                format!("a cursor of a {index:?} query needs its index key"),
            ));
        };
        let (_, pk, sk) = index_names(index);
        key.insert(pk.to_owned(), s(&index_key.pk));
        key.insert(sk.to_owned(), s(&index_key.sk));
    }
    Ok(key)
}

/// The cursor for a LastEvaluatedKey.
fn cursor_from(index: Option<Index>, last_evaluated: &AttributeMap) -> Result<Cursor> {
    let index_key = match index {
        None => None,
        Some(index) => Some(
            index_key_of(last_evaluated, index)?
                .ok_or_else(|| malformed(format!("LastEvaluatedKey without the {index:?} key")))?,
        ),
    };
    Ok(Cursor {
        pk: required_string(last_evaluated, PK)?,
        sk: required_string(last_evaluated, SK)?,
        index_key,
    })
}

// ----- validation: arca_core::store::checks, shared with the embedded store -----------

/// A failed condition of a single write, worded like the embedded store's.
fn single_write_error(error: Error, pk: &str, sk: &str) -> Error {
    match error {
        Error::Conflict { .. } => Error::conflict(format!("({pk}, {sk}): condition failed")),
        other => other,
    }
}

fn transact_item(table: &str, write: &Write) -> Result<TransactWriteItem> {
    let built = |e: aws_sdk_dynamodb::error::BuildError| Error::permanent(e);
    Ok(match write {
        Write::Put { item, condition } => {
            let expression = condition_expression(*condition);
            let put = Put::builder()
                .table_name(table)
                .set_item(Some(to_attributes(item)?))
                .set_condition_expression(expression.as_ref().map(|e| e.text.clone()))
                .set_expression_attribute_names(expression.as_ref().and_then(Expression::names))
                .set_expression_attribute_values(expression.as_ref().and_then(Expression::values))
                .build()
                .map_err(built)?;
            TransactWriteItem::builder().put(put).build()
        }
        Write::Delete { pk, sk, condition } => {
            let expression = condition_expression(*condition);
            let delete = Delete::builder()
                .table_name(table)
                .set_key(Some(table_key(pk, sk)))
                .set_condition_expression(expression.as_ref().map(|e| e.text.clone()))
                .set_expression_attribute_names(expression.as_ref().and_then(Expression::names))
                .set_expression_attribute_values(expression.as_ref().and_then(Expression::values))
                .build()
                .map_err(built)?;
            TransactWriteItem::builder().delete(delete).build()
        }
        Write::Check { pk, sk, condition } => {
            let expression = check_expression(*condition);
            let check = ConditionCheck::builder()
                .table_name(table)
                .set_key(Some(table_key(pk, sk)))
                .condition_expression(expression.text.clone())
                .set_expression_attribute_names(expression.names())
                .set_expression_attribute_values(expression.values())
                .build()
                .map_err(built)?;
            TransactWriteItem::builder().condition_check(check).build()
        }
    })
}

#[async_trait]
impl ItemStore for DynamoItemStore {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>> {
        check_key("pk", pk)?;
        check_key("sk", sk)?;
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(table_key(pk, sk)))
            // Read-your-writes, as the embedded store gives.
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(e, &self.what()))?;
        output.item().map(from_attributes).transpose()
    }

    async fn get_many(&self, keys: &[(String, String)]) -> Result<Vec<Option<Item>>> {
        check_batch_get(keys)?;
        // BatchGetItem refuses a key twice in one call, and takes 100 keys: ask each
        // distinct key once, 100 at a time, and place the answers back in order.
        let mut distinct: Vec<&(String, String)> = keys.iter().collect();
        distinct.sort_unstable();
        distinct.dedup();
        let mut found: HashMap<(String, String), Item> = HashMap::new();
        for chunk in distinct.chunks(100) {
            let mut pending: Vec<AttributeMap> = chunk.iter().map(|(pk, sk)| table_key(pk, sk)).collect();
            let mut pause = Duration::from_millis(50);
            for round in 0.. {
                if pending.is_empty() {
                    break;
                }
                if round == 10 {
                    return Err(Error::transient(format!(
                        "{}: {} keys of a batch get left unprocessed after 10 tries",
                        self.what(),
                        pending.len()
                    )));
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| Error::permanent(format!("building a batch get: {e}")))?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| classify(e, &self.what()))?;
                for attributes in output
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    let item = from_attributes(attributes)?;
                    found.insert((item.pk.clone(), item.sk.clone()), item);
                }
                // Keys DynamoDB did not get to (throughput, size): asked again after a pause.
                if let Some(left) = output.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                    pending = left.keys().to_vec();
                    if !pending.is_empty() {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(2));
                    }
                }
            }
        }
        Ok(keys.iter().map(|key| found.get(key).cloned()).collect())
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<()> {
        check_item(&item)?;
        let expression = condition_expression(condition);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_attributes(&item)?))
            .set_condition_expression(expression.as_ref().map(|e| e.text.clone()))
            .set_expression_attribute_names(expression.as_ref().and_then(Expression::names))
            .set_expression_attribute_values(expression.as_ref().and_then(Expression::values))
            .send()
            .await
            .map_err(|e| single_write_error(classify(e, &self.what()), &item.pk, &item.sk))?;
        Ok(())
    }

    async fn delete(&self, pk: &str, sk: &str, condition: Condition) -> Result<()> {
        check_key("pk", pk)?;
        check_key("sk", sk)?;
        let expression = condition_expression(condition);
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(table_key(pk, sk)))
            .set_condition_expression(expression.as_ref().map(|e| e.text.clone()))
            .set_expression_attribute_names(expression.as_ref().and_then(Expression::names))
            .set_expression_attribute_values(expression.as_ref().and_then(Expression::values))
            .send()
            .await
            .map_err(|e| single_write_error(classify(e, &self.what()), pk, sk))?;
        Ok(())
    }

    async fn query(&self, query: Query) -> Result<Page> {
        check_query(&query)?;
        let Some(condition) = key_condition(query.index, &query.pk, &query.range)? else {
            return Ok(Page {
                items: Vec::new(),
                cursor: None,
            });
        };
        let start = query
            .cursor
            .as_ref()
            .map(|cursor| start_key(query.index, cursor))
            .transpose()?;
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(query.index.map(|index| index_names(index).0.to_owned()))
            .key_condition_expression(condition.text.clone())
            .set_expression_attribute_names(condition.names())
            .set_expression_attribute_values(condition.values())
            .scan_index_forward(query.ascending)
            .limit(i32::try_from(query.limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            // Not allowed on a GSI; on the table it gives read-your-writes.
            .set_consistent_read(query.index.is_none().then_some(true))
            .send()
            .await
            .map_err(|e| classify(e, &self.what()))?;
        let items = output.items().iter().map(from_attributes).collect::<Result<Vec<_>>>()?;
        let cursor = output
            .last_evaluated_key()
            .map(|key| cursor_from(query.index, key))
            .transpose()?;
        Ok(Page { items, cursor })
    }

    async fn scan_partitions_with(&self, sk: &str) -> Result<Vec<String>> {
        let mut partitions = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("#sk = :sk")
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":sk", s(sk))
                .projection_expression("#pk")
                .expression_attribute_names("#pk", PK)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify(e, &self.what()))?;
            for item in output.items() {
                partitions.push(required_string(item, PK)?);
            }
            match output.last_evaluated_key() {
                Some(key) => start = Some(key.clone()),
                None => return Ok(partitions),
            }
        }
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<()> {
        check_transaction(&writes)?;
        if writes.is_empty() {
            return Ok(());
        }
        let items = writes
            .iter()
            .map(|write| transact_item(&self.table, write))
            .collect::<Result<Vec<_>>>()?;
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(canceled)) = err.as_service_error() {
                    let codes: Vec<Option<&str>> = canceled
                        .cancellation_reasons()
                        .iter()
                        .map(|reason| reason.code())
                        .collect();
                    if let Some(error) = transaction_canceled(&codes) {
                        return Err(error);
                    }
                }
                Err(classify(err, &self.what()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> Item {
        Item {
            pk: "ORG#1".into(),
            sk: "POLICY#a".into(),
            gsi1: None,
            gsi2: Some(IndexKey {
                pk: "DUE".into(),
                sk: "2026-01-01T00:00:00Z".into(),
            }),
            gsi3: None,
            version: 7,
            expires_at: Some(1_800_000_000),
            body: serde_json::json!({"name": "daily", "keep": [1, 2]}),
        }
    }

    #[test]
    fn items_map_to_the_documented_attributes_and_back() {
        let attributes = to_attributes(&item()).unwrap();
        let mut names: Vec<_> = attributes.keys().map(String::as_str).collect();
        names.sort_unstable();
        // Sparse: no GSI1 attributes for an item without a GSI1 key.
        assert_eq!(names, ["GSI2PK", "GSI2SK", "PK", "SK", "body", "ttl", "version"]);
        assert_eq!(attributes["version"], AttributeValue::N("7".into()));
        assert_eq!(attributes["ttl"], AttributeValue::N("1800000000".into()));
        assert_eq!(from_attributes(&attributes).unwrap(), item());
    }

    #[test]
    fn an_item_with_half_an_index_key_is_reported_malformed() {
        let mut attributes = to_attributes(&item()).unwrap();
        attributes.remove("GSI2SK");
        assert!(matches!(from_attributes(&attributes), Err(Error::Permanent(_))));
    }

    #[test]
    fn conditions_become_condition_expressions() {
        assert_eq!(condition_expression(Condition::None), None);
        let not_exists = condition_expression(Condition::NotExists).unwrap();
        assert_eq!(not_exists.text, "attribute_not_exists(#pk)");
        assert_eq!(not_exists.names["#pk"], "PK");
        assert_eq!(not_exists.values(), None, "no empty ExpressionAttributeValues");
        let version = condition_expression(Condition::Version(3)).unwrap();
        assert_eq!(version.text, "#version = :version");
        assert_eq!(version.values[":version"], AttributeValue::N("3".into()));
        assert_eq!(
            check_expression(Condition::None).text,
            "attribute_exists(#pk) OR attribute_not_exists(#pk)"
        );
    }

    #[test]
    fn sort_key_ranges_become_key_conditions() {
        let on = |range: SortKeyRange| key_condition(Some(Index::Gsi1), "P", &range).unwrap();
        let all = on(SortKeyRange::All).unwrap();
        assert_eq!(all.text, "#pk = :pk");
        assert_eq!(all.names, HashMap::from([("#pk".to_owned(), "GSI1PK".to_owned())]));
        assert_eq!(on(SortKeyRange::BeginsWith(String::new())).unwrap().text, "#pk = :pk");
        let prefix = on(SortKeyRange::BeginsWith("a#".into())).unwrap();
        assert_eq!(prefix.text, "#pk = :pk AND begins_with(#sk, :from)");
        assert_eq!(prefix.names["#sk"], "GSI1SK");
        assert_eq!(prefix.values[":from"], s("a#"));
        assert_eq!(
            on(SortKeyRange::LessThan("m".into())).unwrap().text,
            "#pk = :pk AND #sk < :to"
        );
        assert_eq!(on(SortKeyRange::LessThan(String::new())), None);
        let between = on(SortKeyRange::Between("b".into(), "d".into())).unwrap();
        assert_eq!(between.text, "#pk = :pk AND #sk BETWEEN :from AND :to");
        assert_eq!((&between.values[":from"], &between.values[":to"]), (&s("b"), &s("d")));
        assert_eq!(
            on(SortKeyRange::Between(String::new(), "d".into())).unwrap().text,
            "#pk = :pk AND #sk <= :to"
        );
        assert!(matches!(
            key_condition(None, "P", &SortKeyRange::Between("d".into(), "b".into())),
            Err(Error::Invalid { .. })
        ));
        let table = key_condition(None, "P", &SortKeyRange::LessThan("m".into()))
            .unwrap()
            .unwrap();
        assert_eq!((table.names["#pk"].as_str(), table.names["#sk"].as_str()), ("PK", "SK"));
    }

    #[test]
    fn cursors_round_trip_through_the_exclusive_start_key() {
        let cursor = Cursor {
            pk: "ORG#1".into(),
            sk: "KEY#9".into(),
            index_key: Some(IndexKey {
                pk: "HASH#x".into(),
                sk: "KEY".into(),
            }),
        };
        let key = start_key(Some(Index::Gsi1), &cursor).unwrap();
        assert_eq!(key.len(), 4);
        assert_eq!(key["GSI1PK"], s("HASH#x"));
        assert_eq!(cursor_from(Some(Index::Gsi1), &key).unwrap(), cursor);

        let table_cursor = Cursor {
            pk: "ORG#1".into(),
            sk: "KEY#9".into(),
            index_key: None,
        };
        let key = start_key(None, &table_cursor).unwrap();
        assert_eq!(key, table_key("ORG#1", "KEY#9"));
        assert_eq!(cursor_from(None, &key).unwrap(), table_cursor);

        assert!(matches!(
            start_key(Some(Index::Gsi2), &table_cursor),
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(cursor_from(Some(Index::Gsi2), &key), Err(Error::Permanent(_))));
    }
}
