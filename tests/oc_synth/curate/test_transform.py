import pytest

from oc_common.errors import ConfigError
from oc_common.records import read_file_records, write_records
from oc_common.stats import Stats
from oc_synth.curate.transform import PiiConfig, PiiReplacer, run_transform, strip_copyright_header

APACHE_HEAD = """#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright 2021 The Example Authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.

import os
"""


@pytest.mark.parametrize("language,text,expected", [
    ("Python", APACHE_HEAD, "#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\nimport os\n"),
    ("C", "/*\n * Copyright (c) 2019 Foo Inc.\n * All rights reserved.\n */\n\n#include <stdio.h>\n",
     "#include <stdio.h>\n"),
    ("Java", "// SPDX-License-Identifier: MIT\n// (c) 2020 Bar\npackage a;\n", "package a;\n"),
    ("SQL", "-- Copyright 2018 Baz\nSELECT 1;\n", "SELECT 1;\n"),
    ("HTML", "<!-- Copyright 2017 Qux. All rights reserved. -->\n<html></html>\n", "<html></html>\n"),
    ("Python", '"""Tools.\n\nCopyright 2021 X. Licensed under MIT.\n"""\nimport x\n', "import x\n"),
])
def test_copyright_notice_removed(language, text, expected):
    assert strip_copyright_header(text, language) == (expected, True)


@pytest.mark.parametrize("language,text", [
    ("Python", "# Utilities for parsing.\nimport os\n"),  # a comment, but not a notice
    ("Python", "import os\n# Copyright 2020 in the middle is not a head notice\n"),
    ("C", "#include <stdio.h>\n/* Copyright 2020 */\n"),
    ("C", "/* Copyright 2020 never closed\nint x;\n"),
    ("Python", '"""Just a docstring."""\nimport x\n'),
])
def test_copyright_kept_when_not_a_head_notice(language, text):
    assert strip_copyright_header(text, language) == (text, False)


def test_long_head_block_is_left_alone():
    text = "# Copyright 2020 X\n" + "# doc line\n" * 200 + "x = 1\n"
    assert strip_copyright_header(text, "Python", max_block_lines=100)[1] is False
    assert strip_copyright_header(text, "Python", max_block_lines=500)[1] is True


def test_pii_replacement_by_kind():
    text = ('contact = "alice.smith@gmail.com"\nnoreply = "git@github.com"\ndemo = "user@example.com"\n'
            'server = "34.120.1.7"\nlan = "192.168.0.10"\ndns = "8.8.8.8"\nv6 = "2a00:1450:4001:82a::200e"\n'
            'version = "1.2.3"\nclock = "12:30:45"\n'
            'AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"\npassword = "s3cr3t-Passw0rd!"\n')
    st = Stats()
    out = PiiReplacer(PiiConfig()).replace(text, st)
    assert 'contact = "<EMAIL>"' in out
    assert "git@github.com" in out and "user@example.com" in out
    assert 'server = "<IP_ADDRESS>"' in out and 'v6 = "<IP_ADDRESS>"' in out
    assert "192.168.0.10" in out and "8.8.8.8" in out and '"1.2.3"' in out and "12:30:45" in out
    assert 'AWS_ACCESS_KEY_ID = "<KEY>"' in out and 'password = "<PASSWORD>"' in out
    assert dict(st.groups["pii"]) == {"email": 1, "ip_address": 2, "key": 1, "password": 1}


def test_pii_kinds_can_be_switched_off():
    cfg = PiiConfig(emails=False, secrets=False)
    st = Stats()
    text = 'a = "alice@gmail.com"\npassword = "s3cr3t-Passw0rd!"\n'
    assert PiiReplacer(cfg).replace(text, st) == text


def test_run_transform_counts_and_config_overrides(tmp_path):
    inp = tmp_path / "in"
    write_records(inp / "part.jsonl", [
        {"id": "1", "language": "Python", "text": APACHE_HEAD + 'EMAIL = "bob@corp.io"\n'},
        {"id": "2", "language": "Go", "text": "package main\n"},
    ])
    stats = run_transform(inp, tmp_path / "out", quiet=True)
    recs = {r["id"]: r for r in read_file_records(tmp_path / "out" / "part.jsonl")[0]}
    assert recs["1"]["copyright_removed"] is True and recs["1"]["pii_replaced"] == 1
    assert "Licensed" not in recs["1"]["text"] and "<EMAIL>" in recs["1"]["text"]
    assert recs["2"]["text"] == "package main\n" and recs["2"]["pii_replaced"] == 0
    assert stats.counters["copyright_removed"] == 1 and stats.groups["pii"]["email"] == 1
    run_transform(inp, tmp_path / "out2", overrides=["copyright.enabled=false", "pii.placeholders.email=<MAIL>"],
                  quiet=True)
    rec = read_file_records(tmp_path / "out2" / "part.jsonl")[0][0]
    assert "Licensed under" in rec["text"] and "<MAIL>" in rec["text"]


def test_bad_override_names_the_key(tmp_path):
    write_records(tmp_path / "in" / "p.jsonl", [{"id": "1", "text": "x"}])
    with pytest.raises(ConfigError, match=r"copyright.max_block_lines"):
        run_transform(tmp_path / "in", tmp_path / "out", overrides=["copyright.max_block_lines=zero"], quiet=True)
    with pytest.raises(ConfigError, match=r"pii.emailz: unknown key"):
        run_transform(tmp_path / "in", tmp_path / "out", overrides=["pii.emailz=false"], quiet=True)
