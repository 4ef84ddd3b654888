//! `attest schema`: a JSON Schema (draft 2020-12) of the suite format, for editors (completion
//! and hover text through yaml-language-server) and CI validators (check-jsonschema, ajv).
//!
//! It accepts every suite attest accepts: every field that is not text also takes a `${name}`
//! reference (variables are resolved when the suite loads). It rejects what a schema can see:
//! unknown keys, wrong types, values outside their range or list, a check without exactly one
//! kind. It uses only standard keywords and no `format`, so ajv compiles it in strict mode.

use schemars::{json_schema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::checks;
use crate::duration::HumanDuration;
use crate::safety::Safety;
use crate::suite::{Retry, SuiteFile};

const COMMON_DESCRIPTIONS: &[(&str, &str)] = &[
    (
        "id",
        "Stable check id: letters, digits, `-`, `_`, `.`; the check is named `<suite>::<id>`.",
    ),
    ("title", "One line saying what the check proves."),
    ("description", "Free text shown in reports."),
    (
        "covers",
        "Requirement IDs from the suite's `requirements`, and acceptance criteria as `AC2`.",
    ),
    (
        "timeout",
        "How long the check may take, retries included (default 30s).",
    ),
    (
        "retry",
        "Poll: re-run the check until it passes or the timeout runs out.",
    ),
    (
        "needs",
        "Earlier checks of this suite that must pass first; otherwise this one is skipped.",
    ),
    (
        "safety",
        "How much the check disturbs the environment; a kind may raise it, never lower it.",
    ),
    (
        "register",
        "Makes the kind's exported values available to later checks as `${NAME_key}`.",
    ),
    (
        "ignore",
        "The reason to leave this check out unless `--include-ignored` or `--ignored` is given.",
    ),
    (
        "from",
        "The namespace of the pod the criterion is about (`{ namespace: apps }`): reports say whether the run measured it from a pod there (`attest job --namespace apps`), or from elsewhere.",
    ),
];

/// The schema of a whole suite file, with `checks` items spelled out kind by kind.
pub fn suite_schema() -> Schema {
    let mut generator = SchemaGenerator::default();
    let mut root = generator.root_schema_for::<SuiteFile>();
    let check = check_schema(&mut generator);
    if let Some(props) = root.get_mut("properties").and_then(|p| p.as_object_mut()) {
        props.insert(
            "checks".into(),
            json!({ "type": "array", "minItems": 1, "items": check, "description": "The checks, run in this order." }),
        );
        props.insert(
            "variables".into(),
            json!({
                "description": "Variables the checks use as `${name}`: a plain default, or a declaration.",
                "type": "object",
                "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" },
                "additionalProperties": { "$ref": "#/$defs/VariableDecl" }
            }),
        );
        if let Some(criteria) = props.get_mut("criteria").and_then(Value::as_object_mut) {
            criteria.insert("propertyNames".into(), json!({ "pattern": "^AC[0-9.]+$" }));
        }
        if let Some(id) = props.get_mut("id").and_then(Value::as_object_mut) {
            id.insert("pattern".into(), json!("^[A-Za-z0-9._-]+$|\\$"));
        }
    }
    if let Some(object) = root.as_object_mut() {
        object.insert("required".into(), json!(["id", "title", "checks"]));
        object.insert("additionalProperties".into(), json!(false));
    }
    // Kind schemas were generated after the root: publish every definition the generator holds.
    let mut defs = generator.definitions().clone();
    adjust_definitions(&mut defs);
    root.insert("$defs".into(), Value::Object(defs));
    let mut value = root.to_value();
    fix_schema(&mut value);
    Schema::try_from(value).expect("the schema stays an object")
}

/// A `${name}` reference (or `$name`), accepted wherever a typed value is.
fn reference_schema() -> Value {
    json!({
        "description": "A `${variable}` reference, resolved when the suite loads.",
        "type": "string",
        "pattern": "\\$(\\{[A-Za-z_]|[A-Za-z_])"
    })
}

/// Fixes that need to know the field: ranges, shapes schemars cannot see.
fn adjust_definitions(defs: &mut Map<String, Value>) {
    defs.insert("Reference".into(), reference_schema());
    let set = |defs: &mut Map<String, Value>, def: &str, field: &str, key: &str, value: Value| {
        if let Some(schema) = defs
            .get_mut(def)
            .and_then(|d| d.pointer_mut(&format!("/properties/{field}")))
            .and_then(Value::as_object_mut)
        {
            schema.insert(key.into(), value);
        }
    };
    // Ports start at 1.
    set(defs, "TcpCheck", "port", "minimum", json!(1));
    set(defs, "ConnectionSpec", "port", "minimum", json!(1));
    set(defs, "TcpCheck", "count", "minimum", json!(1));
    set(defs, "TcpCheck", "count", "maximum", json!(10_000));
    set(defs, "PgCrudCheck", "rows", "minimum", json!(1));
    set(defs, "PgCrudCheck", "rows", "maximum", json!(1_000_000));
    set(defs, "Retry", "attempts", "minimum", json!(1));
    set(defs, "CommandCheck", "exit_code", "minimum", json!(0));
    set(defs, "CommandCheck", "exit_code", "maximum", json!(255));
    // `status: 302` or `status: [200, 204]`.
    if let Some(status) = defs
        .get_mut("HttpCheck")
        .and_then(|d| d.pointer_mut("/properties/status"))
    {
        let description = status.get("description").cloned().unwrap_or(json!(""));
        let code = json!({ "type": "integer", "minimum": 100, "maximum": 599 });
        *status = json!({
            "description": description,
            "anyOf": [code.clone(), { "type": "array", "items": code }]
        });
    }
    if let Some(duration) = defs.get_mut("HumanDuration").and_then(Value::as_object_mut) {
        duration.insert(
            "pattern".into(),
            json!("^\\s*([0-9]+(\\.[0-9]+)?\\s*[A-Za-zµ]+\\s*)+$|\\$"),
        );
    }
    // A plain default may be any scalar: `pg_port: 5432`.
    let scalar = json!([{ "type": "string" }, { "type": "number" }, { "type": "boolean" }, { "type": "null" }]);
    if let Some(decl) = defs.get_mut("VariableDecl") {
        let description = decl.get("description").cloned().unwrap_or(json!(""));
        let mut branches = scalar.as_array().cloned().unwrap_or_default();
        branches.push(json!({ "$ref": "#/$defs/VariableSpec" }));
        *decl = json!({ "description": description, "anyOf": branches });
    }
    set(defs, "VariableSpec", "default", "anyOf", scalar);
    if let Some(default) = defs
        .get_mut("VariableSpec")
        .and_then(|d| d.pointer_mut("/properties/default"))
        .and_then(Value::as_object_mut)
    {
        default.remove("type");
    }
}

/// Keywords whose value is one schema, or a list or map of schemas.
const ONE_SCHEMA: &[&str] = &[
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "propertyNames",
    "contains",
];
const SCHEMA_LISTS: &[&str] = &["anyOf", "oneOf", "allOf", "prefixItems"];
const SCHEMA_MAPS: &[&str] = &[
    "properties",
    "$defs",
    "patternProperties",
    "dependentSchemas",
];

/// Makes the generated schema portable and interpolation-aware: no `format` (ajv strict mode
/// rejects unknown ones), no `"default": null` (yaml-language-server's completion breaks on
/// it), no `type` lists (written as `anyOf`), and every non-text value also takes a
/// `${name}` reference.
fn fix_schema(value: &mut Value) {
    let Some(map) = value.as_object_mut() else {
        return;
    };
    for (key, child) in map.iter_mut() {
        if ONE_SCHEMA.contains(&key.as_str()) {
            fix_schema(child);
        } else if SCHEMA_LISTS.contains(&key.as_str()) {
            if let Some(items) = child.as_array_mut() {
                items.iter_mut().for_each(fix_schema);
            }
        } else if SCHEMA_MAPS.contains(&key.as_str()) {
            if let Some(schemas) = child.as_object_mut() {
                schemas.values_mut().for_each(fix_schema);
            }
        }
    }
    map.remove("format");
    if map.get("default") == Some(&Value::Null) {
        map.remove("default");
    }
    if let Some(Value::Array(types)) = map.get("type").cloned() {
        let others: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
        if let [only] = others.as_slice() {
            let outer: Map<String, Value> = ["description", "title", "default"]
                .iter()
                .filter_map(|k| map.remove(*k).map(|v| ((*k).to_owned(), v)))
                .collect();
            let mut inner = std::mem::take(map);
            inner.insert("type".into(), (*only).clone());
            let mut inner = Value::Object(inner);
            interpolable(&mut inner);
            *map = outer;
            map.insert("anyOf".into(), json!([inner, { "type": "null" }]));
            return;
        }
    }
    interpolable(value);
}

/// Wraps a typed schema (integer, number, boolean, a list of allowed words) so that a
/// `${name}` reference is accepted too.
fn interpolable(value: &mut Value) {
    let Some(map) = value.as_object_mut() else {
        return;
    };
    // Text fields take plain YAML numbers and booleans as text (`story: 5.5`).
    let plain_text = map.get("type").and_then(Value::as_str) == Some("string")
        && !["pattern", "enum", "const", "minLength"]
            .iter()
            .any(|k| map.contains_key(*k));
    if plain_text {
        map.remove("type");
        map.insert(
            "anyOf".into(),
            json!([{ "type": "string" }, { "type": "number" }, { "type": "boolean" }]),
        );
        return;
    }
    let typed = matches!(
        map.get("type").and_then(Value::as_str),
        Some("integer" | "number" | "boolean")
    );
    let words = map.contains_key("enum")
        || map
            .get("oneOf")
            .and_then(Value::as_array)
            .is_some_and(|b| !b.is_empty() && b.iter().all(|b| b.get("const").is_some()));
    if !(typed || words) {
        return;
    }
    let outer: Map<String, Value> = ["description", "title", "default"]
        .iter()
        .filter_map(|k| map.remove(*k).map(|v| ((*k).to_owned(), v)))
        .collect();
    let inner = Value::Object(std::mem::take(map));
    *map = outer;
    map.insert(
        "anyOf".into(),
        json!([inner, { "$ref": "#/$defs/Reference" }]),
    );
}

/// A check: the common keys plus exactly one kind key.
fn check_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut properties = Map::new();
    let describe = |name: &str| {
        COMMON_DESCRIPTIONS
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, d)| d)
    };
    let text = |name: &str| json!({ "type": "string", "description": describe(name) });
    let list = |name: &str| json!({ "type": "array", "items": { "type": "string" }, "description": describe(name) });
    properties.insert("id".into(), json!({ "type": "string", "pattern": "^[A-Za-z0-9._-]+$|\\$", "description": describe("id") }));
    properties.insert("title".into(), text("title"));
    properties.insert("description".into(), text("description"));
    properties.insert("covers".into(), list("covers"));
    properties.insert("needs".into(), list("needs"));
    properties.insert(
        "ignore".into(),
        json!({ "type": "string", "minLength": 1, "description": describe("ignore") }),
    );
    properties.insert("register".into(), json!({ "type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "description": describe("register") }));
    for (name, schema) in [
        ("timeout", generator.subschema_for::<HumanDuration>()),
        ("retry", generator.subschema_for::<Retry>()),
        ("safety", generator.subschema_for::<Safety>()),
        ("from", generator.subschema_for::<crate::vantage::Vantage>()),
    ] {
        let mut schema = schema.to_value();
        if let Some(object) = schema.as_object_mut() {
            object.insert("description".into(), json!(describe(name)));
        }
        properties.insert(name.into(), schema);
    }
    let mut one_of = Vec::new();
    for (name, schema) in checks::kind_schemas(generator) {
        let mut schema = schema.to_value();
        let description = checks::kind_description(name);
        if let Some(object) = schema.as_object_mut() {
            object.insert(
                "description".into(),
                json!(format!("`{name}`: {description}")),
            );
        }
        properties.insert(name.into(), schema);
        one_of.push(json!({ "type": "object", "required": [name], "properties": { name: {} } }));
    }
    json_schema!({
        "type": "object",
        "description": "A check: `id`, `title` and exactly one kind key such as `tcp:`.",
        "required": ["id", "title"],
        "properties": properties,
        "additionalProperties": false,
        "oneOf": one_of,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_objects<'v>(value: &'v Value, out: &mut Vec<&'v Map<String, Value>>) {
        match value {
            Value::Object(map) => {
                out.push(map);
                map.values().for_each(|v| all_objects(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| all_objects(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_schema_is_portable() {
        let schema = suite_schema().to_value();
        let mut objects = Vec::new();
        all_objects(&schema, &mut objects);
        for map in objects {
            assert_ne!(map.get("default"), Some(&Value::Null), "{map:?}");
            assert!(!map.get("type").is_some_and(Value::is_array), "{map:?}");
            if map.get("type").and_then(Value::as_str) == Some("integer") {
                assert!(map.get("format").is_none(), "{map:?}");
            }
        }
    }

    #[test]
    fn kind_keys_have_descriptions() {
        let schema = suite_schema().to_value();
        let check = &schema["properties"]["checks"]["items"]["properties"];
        for kind in checks::KIND_NAMES {
            let text = check[kind]["description"].as_str().unwrap_or_default();
            assert!(text.len() > 20, "{kind}: {text}");
        }
    }
}
