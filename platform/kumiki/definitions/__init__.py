"""App definitions: the JSON format of an app (fields, layout, views, settings), its JSON Schema
(``schema_defs/app.schema.json``) and validation with located errors.

    from kumiki.definitions import validate_definition, load_app_schema_json
    normalised = validate_definition(definition)   # raises kumiki.errors.ValidationError
"""
from kumiki.definitions.normalise import default_layout, normalise_definition
from kumiki.definitions.validate import (SCHEMA_PATH, SYSTEM_TYPES, check_view_queries, collect_details,
                                         definition_fields, load_app_schema_json, schema_details,
                                         semantic_details, validate_definition)

__all__ = [
    "validate_definition", "load_app_schema_json", "definition_fields", "check_view_queries",
    "collect_details", "schema_details", "semantic_details", "normalise_definition", "default_layout",
    "SCHEMA_PATH", "SYSTEM_TYPES",
]
