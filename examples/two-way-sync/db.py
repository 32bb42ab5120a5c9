#!/usr/bin/env python3
"""The example's database helper (Python 3 standard library only).

    python3 db.py apply <db> <file.sql>...      run SQL files against a SQLite file
    python3 db.py show <crm.db> <billing.db>    both customers tables, key by key
    python3 db.py conflict-id <key>             the id of key's waiting conflict,
                                                from `ferry conflicts list --json` on stdin

`show` prints one line per customer when both systems hold the same row
(side "both"), and one line per system marked `*` when they differ (a
side without the customer shows "(absent)"). It ends with how many
customers differ.
"""

import json
import sqlite3
import sys

COLUMNS = ["id", "name", "email", "credit_limit", "street", "city", "updated_at"]
HEADERS = ["id", "name", "email", "limit", "street", "city", "updated_at"]
WIDTHS = [3, 17, 24, 6, 14, 13, 20]


def apply(db, files):
    con = sqlite3.connect(db)
    try:
        for f in files:
            with open(f, encoding="utf-8") as sql:
                con.executescript(sql.read())
        con.commit()
    finally:
        con.close()


def rows(db):
    con = sqlite3.connect(db)
    try:
        cur = con.execute(f"SELECT {', '.join(COLUMNS)} FROM customers ORDER BY id")
        return {r[0]: r for r in cur.fetchall()}
    finally:
        con.close()


def line(mark, side, cells):
    out = []
    for value, width, name in zip(cells, WIDTHS, COLUMNS):
        text = "" if value is None else str(value)
        out.append(text.rjust(width) if name in ("id", "credit_limit") else text.ljust(width))
    return f"{mark} {side:<8} " + "  ".join(out).rstrip()


def show(crm_db, billing_db):
    crm, billing = rows(crm_db), rows(billing_db)
    header = "  ".join(
        h.rjust(w) if h in ("id", "limit") else h.ljust(w) for h, w in zip(HEADERS, WIDTHS)
    )
    print(f"  {'side':<8} {header}".rstrip())
    differ = 0
    for key in sorted(set(crm) | set(billing)):
        c, b = crm.get(key), billing.get(key)
        if c == b:
            print(line(" ", "both", c))
            continue
        differ += 1
        for side, row in (("crm", c), ("billing", b)):
            if row is None:
                print(line("*", side, [key, "(absent)"]))
            else:
                print(line("*", side, row))
    if differ:
        print(f"* {differ} customer(s) differ between the CRM and billing")
    else:
        print("  the CRM and billing hold the same customers")


def conflict_id(key):
    for c in json.load(sys.stdin):
        if c["key"] == key and c["status"] == "open":
            print(c["id"])
            return 0
    print(f"db.py: no open conflict for key {key}", file=sys.stderr)
    return 1


def main(argv):
    if len(argv) >= 3 and argv[0] == "apply":
        apply(argv[1], argv[2:])
        return 0
    if len(argv) == 3 and argv[0] == "show":
        show(argv[1], argv[2])
        return 0
    if len(argv) == 2 and argv[0] == "conflict-id":
        return conflict_id(argv[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
