"""Dependency order between calculated fields, and evaluating all of a record's formulas."""
from __future__ import annotations

from kumiki import i18n
from kumiki.errors import Detail, ValidationError
from kumiki.formula.evaluator import compile_formula
from kumiki.formula.values import FormulaError


def _analyse(calc_formulas: dict[str, str], known_fields: dict[str, dict], paths: dict[str, str] | None):
    """(order, {code: [Detail]}) — order holds every field that compiled, dependencies first."""
    paths = paths or {}
    problems: dict[str, list[Detail]] = {}
    deps: dict[str, list[str]] = {}
    for code, text in calc_formulas.items():
        base = paths.get(code, code)
        try:
            f = compile_formula(text)
        except ValidationError as e:
            problems[code] = [Detail(f"{base}.{d.path}", d.key, dict(d.params)) for d in e.details]
            continue
        unknown = f.unknown_references(known_fields)
        if unknown:
            problems[code] = [Detail(f"{base}.{d.path}", d.key, dict(d.params)) for d in unknown]
        deps[code] = [r for r in sorted(f.references) if r in calc_formulas]

    order: list[str] = []
    state: dict[str, int] = {}          # 1 visiting, 2 done
    for start in calc_formulas:
        if start not in deps or state.get(start):
            continue
        stack = [(start, iter(deps[start]))]
        path = [start]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                path.pop()
                state[node] = 2
                order.append(node)
                continue
            if nxt not in deps:
                continue                 # a field that failed to compile: reported already
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                text = " → ".join(cycle)
                for c in set(cycle):
                    problems.setdefault(c, []).append(
                        Detail(f"{paths.get(c, c)}.formula", "formula.cycle", {"cycle": text}))
                continue
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(deps[nxt])))
    return order, problems


def dependency_order(calc_fields: dict[str, str], known_fields: dict[str, dict],
                     paths: dict[str, str] | None = None) -> list[str]:
    """The order to evaluate calculated fields in (each after the fields it reads).

    ``calc_fields`` maps a field code to its formula; ``known_fields`` maps every field code of the app
    to its definition (subtable columns are found inside SUBTABLE definitions). ``paths`` maps a code to
    the definition path used in error details (default: the code), e.g. {"合計": "fields[4]"} →
    "fields[4].formula". Raises ValidationError for syntax errors, unknown functions or field codes,
    and cycles (「A → B → A」).
    """
    order, problems = _analyse(calc_fields, known_fields, paths)
    if problems:
        raise ValidationError([d for code in calc_fields for d in problems.get(code, [])])
    return order


def _formula_of(fdef: dict) -> str:
    return fdef.get("formula") or fdef.get("expression") or ""


def evaluate_all(record_values: dict, calc_fields: dict[str, dict], fields: dict[str, dict], *,
                 tz="Asia/Tokyo", now=None):
    """Evaluate every calculated field of a record, dependencies first.

    ``calc_fields``: code -> definition (CALC with "formula" and "format", or an auto-calculated text
    field with "formula"/"expression"). Returns ``(values_by_code, errors_by_code)``: values are Decimal /
    date / datetime / "HH:MM" / str / None; a field that fails gets None and an error
    ``{"key", "params", "message"}`` (message in Japanese). Other fields still compute; fields that read
    a failed field fail with ``formula.depends_on_error``. Never raises for a formula problem.
    """
    formulas = {code: _formula_of(fdef) for code, fdef in calc_fields.items()}
    order, problems = _analyse(formulas, fields, None)
    values: dict = {}
    errors: dict = {}
    for code, details in problems.items():
        d = details[0]
        errors[code] = _error(d.key, d.params)
    working = dict(record_values or {})
    for code in order:
        if code in errors:
            working[code] = None
            continue
        fdef = calc_fields[code]
        f = compile_formula(formulas[code])
        failed = sorted(r for r in f.references if r in errors)
        if failed:
            errors[code] = _error("formula.depends_on_error", {"code": failed[0]})
            values[code] = working[code] = None
            continue
        fmt = (fdef.get("format") or "NUMBER") if fdef.get("type", "CALC") == "CALC" else "TEXT"
        try:
            result = f.evaluate(working, fields, tz=tz, now=now, format=fmt)
        except FormulaError as e:
            errors[code] = _error(e.key, e.params)
            values[code] = working[code] = None
            continue
        values[code] = working[code] = result
    for code in calc_fields:
        values.setdefault(code, None)
    return values, errors


def _error(key: str, params: dict) -> dict:
    return {"key": key, "params": dict(params), "message": i18n.translate(key, "ja", **params)}


i18n.register({
    "formula.cycle": ("計算式が循環しています: 「{cycle}」", "The formulas refer to each other in a cycle: {cycle}."),
    "formula.depends_on_error": ("計算に使うフィールド「{code}」がエラーのため計算できません。",
                                 "Cannot calculate: it uses \"{code}\", which has an error."),
})
