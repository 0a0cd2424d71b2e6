"""kintone-compatible query language: text -> AST (lark, LALR) -> SQLAlchemy expressions.

    from kumiki.query import compile_query
    cq = compile_query('氏名 like "山田" and 年齢 >= 20 order by 年齢 desc limit 50', schema, ctx, "sqlite")
    stmt = select(schema.table).where(cq.where).order_by(*cq.order_by).limit(cq.limit).offset(cq.offset)
"""
from kumiki.query.parser import (And, Condition, Function, Literal, Or, OrderItem, Query, parse_query,
                                 referenced_fields, to_text)
from kumiki.query.compiler import CompiledQuery, compile_query

__all__ = ["compile_query", "CompiledQuery", "parse_query", "to_text", "Query", "Condition", "And", "Or",
           "Literal", "Function", "OrderItem", "referenced_fields"]
