"""CALC / auto-calculated text formulas (kintone-compatible), as a pure module.

    f = compile_formula("ROUND(単価 * 数量 * 1.1)")   # ValidationError with a located Japanese message
    f.references                                     # {"単価", "数量"}
    f.evaluate(values, fields, tz="Asia/Tokyo", now=None, format=None)   # FormulaError on runtime errors
    dependency_order(calc_formulas, known_fields, paths=None)             # evaluation order; cycles / unknown codes
    evaluate_all(record_values, calc_fields, fields, tz=..., now=...)    # (values_by_code, errors_by_code)

Semantics (as kintone): numbers are decimals (50 significant digits while computing, results rounded
half away from zero to 10 fraction digits, at most 30 integer digits); dates, date-times and times are
seconds (DATE: UNIX time of its midnight UTC; TIME: seconds since 00:00), so 日付 + 60*60*24 is the next
day. Precedence, lowest first: comparison (= != <> < > <= >=), &, + -, * /, unary -, ^ (right-assoc.).
An empty number counts as 0; an empty date keeps arithmetic empty; 値 = "" tests for empty.
"""
from kumiki.formula.deps import dependency_order, evaluate_all
from kumiki.formula.evaluator import Formula, compile_formula
from kumiki.formula.functions import FUNCTIONS
from kumiki.formula.values import FormulaError

__all__ = ["compile_formula", "Formula", "FormulaError", "evaluate_all", "dependency_order", "FUNCTIONS"]
