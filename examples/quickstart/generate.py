#!/usr/bin/env python3
"""Writes the quickstart's input data and what the pipeline should make of it.

    python3 examples/quickstart/generate.py

Deterministic (its own seeded generator, Python 3.11+ standard library only):
running it again writes the same bytes. It writes, next to itself:

- data/contacts.jsonl  6,000 contacts as JSON Lines (ids C00001...)
- data/contacts.csv    5,000 contacts as CSV (ids C10001...)
- data/regions.csv     country code -> region (EU, US, APAC, LATAM), for the
                       field mapper's lookup
- expected/summary.json  how many records are valid and invalid, why each
                       invalid one is invalid, and where it is

A few hundred contacts are invalid, each in exactly one known way (see
REASONS below); every other contact passes the mapper and the validator of
pipeline.toml. Duplicate keys are placed right after the record they repeat,
and never across a multiple of 64 records from the start of their file, so a
batch size that is a multiple of 64 (such as 512) keeps both in one batch,
where the validator's unique_key rule sees them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys

SEED = 20261127
JSONL_RECORDS = 6000
CSV_RECORDS = 5000

# Each kind of invalid record: how many per file, which stage refuses it and
# with which rule. "source" records are lines the file source cannot read:
# they reach the validator as records with `_raw` and `_error`.
REASONS = {
    "missing_email": {"jsonl": 30, "csv": 25, "stage": "validator", "rule": "required", "field": "email"},
    "bad_email": {"jsonl": 40, "csv": 30, "stage": "validator", "rule": "regex", "field": "email"},
    "age_out_of_range": {"jsonl": 25, "csv": 20, "stage": "validator", "rule": "range", "field": "age"},
    "age_not_a_number": {"jsonl": 20, "csv": 20, "stage": "mapper", "rule": "cast", "field": "age"},
    "unknown_country": {"jsonl": 25, "csv": 20, "stage": "validator", "rule": "required", "field": "region"},
    "duplicate_key": {"jsonl": 15, "csv": 15, "stage": "validator", "rule": "unique_key", "field": None},
    "name_too_long": {"jsonl": 15, "csv": 10, "stage": "validator", "rule": "length", "field": "last_name"},
    "malformed_json": {"jsonl": 20, "csv": 0, "stage": "validator", "rule": "source_error", "field": "_error"},
    "csv_too_many_fields": {"jsonl": 0, "csv": 20, "stage": "validator", "rule": "source_error", "field": "_error"},
}

REGIONS = {
    "EU": ["DE", "FR", "ES", "IT", "NL", "SE", "PL", "PT", "IE", "BE", "AT", "DK", "FI"],
    "US": ["US"],
    "APAC": ["JP", "AU", "IN", "SG", "KR", "NZ"],
    "LATAM": ["BR", "MX", "AR", "CL", "CO", "PE"],
}
UNKNOWN_COUNTRIES = ["XX", "ZZ", "QQ", "UK"]

FIRST = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Katherine", "Linus",
    "Margaret", "Niklaus", "Radia", "Tim", "Vint", "Hedy", "Dennis", "Ken", "Sophie", "Yukihiro",
    "Guido", "Bjarne", "Anders", "Lucía", "José", "Zoë", "Łukasz", "Søren", "Chloé", "Mónica",
]
LAST = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "McCarthy", "Johnson",
    "Torvalds", "Hamilton", "Wirth", "Perlman", "Berners-Lee", "Cerf", "Lamarr", "Ritchie",
    "Thompson", "Wilson", "Matsumoto", "van Rossum", "Stroustrup", "Hejlsberg", "García", "Müller",
    "O'Brien", "Smith, Jr.", 'Dwayne "The Rock" Johnson', "Nørgaard", "Łęcki",
]
DOMAINS = ["example.org", "example.com", "mail.example.net", "corp.example"]


class Rng:
    """splitmix64: small, fast and the same on every Python."""

    def __init__(self, seed: int) -> None:
        self.state = seed & 0xFFFFFFFFFFFFFFFF

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return self.next() % n

    def choice(self, items):
        return items[self.below(len(items))]

    def chance(self, percent: int) -> bool:
        return self.below(100) < percent


def plan(rng: Rng, count: int, kind: str) -> list[str | None]:
    """Which record positions of a file are invalid, and how."""
    slots: list[str | None] = [None] * count
    taken: set[int] = set()
    for reason in REASONS:
        n = REASONS[reason][kind]
        placed = 0
        while placed < n:
            i = 1 + rng.below(count - 2)
            if reason == "duplicate_key":
                # The duplicate is record i; it repeats record i - 1, which
                # must be valid and in the same 64-record block.
                if i % 64 == 0 or {i - 1, i, i + 1} & taken:
                    continue
                taken.update({i - 1, i, i + 1})
            else:
                if {i - 1, i, i + 1} & taken:
                    continue
                taken.add(i)
            slots[i] = reason
            placed += 1
    return slots


def email_for(rng: Rng, first: str, last: str, n: int) -> str:
    local = "".join(c for c in f"{first}.{last}".lower() if c.isascii() and (c.isalnum() or c == "."))
    mail = f"{local}{n}@{rng.choice(DOMAINS)}"
    # Some addresses need the mapper's clean-up (trim, lower-case).
    if rng.chance(5):
        mail = f"  {mail.upper()} "
    return mail


def contact(rng: Rng, n: int, prefix: str, with_time: bool) -> dict:
    first = rng.choice(FIRST)
    last = rng.choice(LAST)
    region = rng.choice(list(REGIONS))
    year, month, day = 2015 + rng.below(11), 1 + rng.below(12), 1 + rng.below(28)
    if with_time:
        signup = f"{year:04}-{month:02}-{day:02}T{rng.below(24):02}:{rng.below(60):02}:{rng.below(60):02}Z"
    else:
        signup = f"{year:04}-{month:02}-{day:02}"
    return {
        "id": f"{prefix}{n:05}",
        "first_name": first if not rng.chance(3) else f" {first} ",
        "last_name": last,
        "mail": email_for(rng, first, last, n),
        "phone": None if rng.chance(10) else f"+{1 + rng.below(98)} {rng.below(1000):03} {rng.below(10**7):07}",
        "country": rng.choice(REGIONS[region]),
        "age": 18 + rng.below(73),
        "signup": signup,
    }


def region_of(country: str) -> str | None:
    for region, codes in REGIONS.items():
        if country in codes:
            return region
    return None


def spoil(rng: Rng, c: dict, reason: str, previous: dict | None) -> dict:
    """Makes `c` invalid in exactly one way."""
    c = dict(c)
    if reason == "missing_email":
        c["mail"] = None
    elif reason == "bad_email":
        c["mail"] = rng.choice(["bob(at)example.org", "no-at-sign.example.org", "two@@example.org x", "@"])
        if c["mail"] == "two@@example.org x":
            c["mail"] = "a b@example.org"
    elif reason == "age_out_of_range":
        c["age"] = rng.choice([-3, -1, 121, 150, 999])
    elif reason == "age_not_a_number":
        c["age"] = rng.choice(["forty", "n/a", "3O", "unknown"])
    elif reason == "unknown_country":
        c["country"] = rng.choice(UNKNOWN_COUNTRIES)
    elif reason == "duplicate_key":
        assert previous is not None
        c["id"] = previous["id"]
    elif reason == "name_too_long":
        c["last_name"] = "Wolfeschlegelsteinhausenbergerdorff-" + "x" * (5 + rng.below(20))
    return c


def write_jsonl(rng: Rng, path: str, summary: dict) -> int:
    slots = plan(rng, JSONL_RECORDS, "jsonl")
    out = io.StringIO()
    previous = None
    for i, reason in enumerate(slots):
        line_no = i + 1
        c = contact(rng, i + 1, "C", with_time=rng.chance(50))
        if reason is None:
            record = c
        elif reason == "malformed_json":
            text = json.dumps(c, ensure_ascii=False)
            out.write(text[: 20 + rng.below(len(text) - 30)] + "\n")
            note_invalid(summary, reason, None, "contacts.jsonl", line_no)
            previous = None
            continue
        else:
            record = spoil(rng, c, reason, previous)
            note_invalid(summary, reason, record["id"], "contacts.jsonl", line_no)
        if record["mail"] is None and reason == "missing_email" and rng.chance(50):
            record = {k: v for k, v in record.items() if k != "mail"}  # absent, not null
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        note_valid(summary, record, reason)
        previous = record
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(out.getvalue())
    return JSONL_RECORDS


def write_csv(rng: Rng, path: str, summary: dict) -> int:
    slots = plan(rng, CSV_RECORDS, "csv")
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    header = ["id", "first_name", "last_name", "mail", "phone", "country", "age", "signup"]
    w.writerow(header)
    previous = None
    for i, reason in enumerate(slots):
        line_no = i + 2  # the header is line 1
        c = contact(rng, 10001 + i, "C", with_time=False)
        record = c if reason in (None, "csv_too_many_fields") else spoil(rng, c, reason, previous)
        row = ["" if record[h] is None else str(record[h]) for h in header]
        if reason == "csv_too_many_fields":
            row.append(rng.choice(["extra", "", "unexpected, quoted"]))
            note_invalid(summary, reason, None, "contacts.csv", line_no)
        elif reason is not None:
            note_invalid(summary, reason, record["id"], "contacts.csv", line_no)
        w.writerow(row)
        note_valid(summary, record, reason)
        previous = record
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(out.getvalue())
    return CSV_RECORDS


def note_invalid(summary: dict, reason: str, key: str | None, file: str, line: int) -> None:
    summary["invalid_records"].append({"reason": reason, "id": key, "file": file, "line": line})


def note_valid(summary: dict, record: dict, reason: str | None) -> None:
    if reason is None:
        region = region_of(record["country"])
        summary["valid_by_region"][region] += 1


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    data = os.path.join(here, "data")
    expected = os.path.join(here, "expected")
    os.makedirs(data, exist_ok=True)
    os.makedirs(expected, exist_ok=True)
    rng = Rng(SEED)
    summary: dict = {"invalid_records": [], "valid_by_region": {r: 0 for r in REGIONS}}

    with open(os.path.join(data, "regions.csv"), "w", encoding="utf-8", newline="") as f:
        f.write("country,region\n")
        for region, codes in REGIONS.items():
            for code in codes:
                f.write(f"{code},{region}\n")

    n_jsonl = write_jsonl(rng, os.path.join(data, "contacts.jsonl"), summary)
    n_csv = write_csv(rng, os.path.join(data, "contacts.csv"), summary)

    invalid = summary["invalid_records"]
    total = n_jsonl + n_csv
    by_reason = {}
    for reason, info in REASONS.items():
        by_reason[reason] = {
            "count": sum(1 for r in invalid if r["reason"] == reason),
            "in_jsonl": info["jsonl"],
            "in_csv": info["csv"],
            "stage": info["stage"],
            "rule": info["rule"],
            "field": info["field"],
        }
    valid = total - len(invalid)
    assert valid == sum(summary["valid_by_region"].values()), "every record is valid or invalid once"
    result = {
        "about": "What pipeline.toml should make of data/: written by generate.py; do not edit.",
        "seed": SEED,
        "records": {"contacts.jsonl": n_jsonl, "contacts.csv": n_csv, "total": total},
        "valid": valid,
        "invalid": len(invalid),
        "invalid_at_mapper": sum(1 for r in invalid if REASONS[r["reason"]]["stage"] == "mapper"),
        "invalid_at_validator": sum(1 for r in invalid if REASONS[r["reason"]]["stage"] == "validator"),
        "valid_by_region": summary["valid_by_region"],
        "eu_output": summary["valid_by_region"]["EU"],
        "invalid_by_reason": by_reason,
        "invalid_records": invalid,
    }
    with open(os.path.join(expected, "summary.json"), "w", encoding="utf-8", newline="") as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(
        f"wrote {total} contacts ({n_jsonl} JSON Lines, {n_csv} CSV): "
        f"{valid} valid, {len(invalid)} invalid",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
