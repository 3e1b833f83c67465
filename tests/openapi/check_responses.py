#!/usr/bin/env python3
"""Validates real responses of the server against the response schemas of the OpenAPI document,
with the external `jsonschema` package (Draft 2020-12, the dialect of OpenAPI 3.1).

usage: check_responses.py OPENAPI.json SAMPLES.json
SAMPLES: [{"path": "/api/events/{id}", "method": "get", "status": 200, "body": …, "headers"?: {…}}, …]
and stream messages as {"schema": "ServerMessage", "body": …} (validated against that component).
A sample with "headers" (the response's, names in any case) must also carry every header the
document gives that response (401 WWW-Authenticate, 429 Retry-After), valid against its schema.
Prints one line per sample; exits 1 if any sample does not validate or has no schema."""
import json
import sys

import jsonschema


def main():
    doc = json.load(open(sys.argv[1], encoding="utf-8"))
    samples = json.load(open(sys.argv[2], encoding="utf-8"))
    failed = 0
    for s in samples:
        if "schema" in s:
            # a stream message: validate against a named component schema
            where = f"message {s['body'].get('type')} as {s['schema']}"
            failed += check(doc, {"$ref": f"#/components/schemas/{s['schema']}"}, s["body"], where)
            continue
        where = f"{s['method'].upper()} {s['path']} {s['status']}"
        op = doc["paths"].get(s["path"], {}).get(s["method"])
        if op is None:
            print(f"FAIL {where}: no such operation in the document")
            failed += 1
            continue
        resp = op["responses"].get(str(s["status"]))
        if resp is None:
            print(f"FAIL {where}: status not documented")
            failed += 1
            continue
        if "$ref" in resp:
            resp = doc["components"]["responses"][resp["$ref"].rsplit("/", 1)[1]]
        schema = resp.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            print(f"FAIL {where}: no application/json schema")
            failed += 1
            continue
        bad = check(doc, schema, s["body"], where)
        if "headers" in s:
            bad = max(bad, check_headers(doc, resp.get("headers", {}), s["headers"], where))
        failed += bad
    print(f"{len(samples) - failed} of {len(samples)} responses valid")
    sys.exit(1 if failed else 0)


def check_headers(doc, documented, got, where):
    """1 if a header documented for the response is missing or does not match its schema."""
    got = {k.lower(): v for k, v in got.items()}
    bad = 0
    for name, h in documented.items():
        value = got.get(name.lower())
        if value is None:
            print(f"FAIL {where}: header {name} missing")
            bad = 1
            continue
        schema = h.get("schema", {})
        if schema.get("type") == "integer":
            try:
                value = int(value)
            except ValueError:
                print(f"FAIL {where}: header {name}: '{value}' is not an integer")
                bad = 1
                continue
        bad = max(bad, check(doc, schema, value, f"{where} header {name}", quiet=True))
    return bad


def check(doc, schema, body, where, quiet=False):
    """1 if `body` does not validate against `schema` (refs resolved in the document), else 0."""
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema", "allOf": [schema], "components": doc["components"]}
    v = jsonschema.Draft202012Validator(root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(v.iter_errors(body), key=lambda e: list(e.absolute_path))
    for e in errors[:5]:
        print(f"FAIL {where}: at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}")
    if not errors and not quiet:
        print(f"ok   {where}")
    return 1 if errors else 0


if __name__ == "__main__":
    main()
