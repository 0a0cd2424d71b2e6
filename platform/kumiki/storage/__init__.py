"""Per-app physical tables: DDL at run time, record reads and writes, history rows.

Only RecordService calls into this package.
"""
