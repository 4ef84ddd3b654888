//! `attest schema`: a JSON Schema of the suite format, so editors can complete suite files.

use schemars::{json_schema, Schema, SchemaGenerator};

use crate::checks;
use crate::suite::{HumanDuration, Retry, Safety, SuiteFile};

/// The schema of a whole suite file, with `checks` items spelled out kind by kind.
pub fn suite_schema() -> Schema {
    let mut generator = SchemaGenerator::default();
    let mut root = generator.root_schema_for::<SuiteFile>();
    let check = check_schema(&mut generator);
    if let Some(props) = root.get_mut("properties").and_then(|p| p.as_object_mut()) {
        props.insert(
            "checks".into(),
            json_schema!({ "type": "array", "items": check, "description": "The checks, run in this order." }).into(),
        );
    }
    // Kind schemas were generated after the root: publish every definition the generator holds.
    root.insert(
        "$defs".into(),
        serde_json::Value::Object(generator.definitions().clone()),
    );
    root
}

/// A check: the common keys plus exactly one kind key.
fn check_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut properties = serde_json::Map::new();
    let string = json_schema!({ "type": "string" });
    properties.insert("id".into(), json_schema!({ "type": "string", "pattern": "^[A-Za-z0-9._-]+$", "description": "Stable check id." }).into());
    properties.insert("title".into(), string.clone().into());
    properties.insert("description".into(), string.clone().into());
    properties.insert("covers".into(), json_schema!({ "type": "array", "items": { "type": "string" }, "description": "Requirement IDs from the suite's `requirements`, and acceptance criteria as `AC2`." }).into());
    properties.insert(
        "timeout".into(),
        generator.subschema_for::<HumanDuration>().into(),
    );
    properties.insert("retry".into(), generator.subschema_for::<Retry>().into());
    properties.insert("needs".into(), json_schema!({ "type": "array", "items": { "type": "string" }, "description": "Earlier checks that must pass first; otherwise this one is skipped." }).into());
    properties.insert("safety".into(), generator.subschema_for::<Safety>().into());
    properties.insert("register".into(), json_schema!({ "type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "description": "Makes the kind's exported values available to later checks as `${NAME_key}`." }).into());
    properties.insert("ignore".into(), json_schema!({ "type": "string", "description": "Reason to leave this check out unless --include-ignored is given." }).into());
    let mut one_of = Vec::new();
    for (name, schema) in checks::kind_schemas(generator) {
        properties.insert(name.into(), schema.into());
        one_of.push(json_schema!({ "required": [name] }));
    }
    json_schema!({
        "type": "object",
        "required": ["id", "title"],
        "properties": properties,
        "additionalProperties": false,
        "oneOf": one_of,
    })
}
