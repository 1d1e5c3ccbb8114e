"""The natural language of a file (``zh`` or ``en``), which decides how RefineCode tokenizes it and which text rules
apply.

The reference guesses it with a fastText model of its own (``lang_predictor.bin``, shared on Google Drive, not in its
repository) and then tokenizes Chinese with jieba after folding traditional to simplified characters (zhconv), applies
its ``zh`` text rules to Chinese text files and its ``en`` rules to every other text file. Without that model we
decide by script: a file is ``zh`` when Han characters are at least ``ZH_MIN_HAN_SHARE`` of its letters and kana
(Japanese) are under ``JA_MIN_KANA_SHARE`` of them; everything else is ``en``. The shares are ours. A record that
carries its own ``lang`` field (a language code from any detector) is taken at its word.

This module imports only the standard library: the reference-fixture script loads it in the reference's own venv.
"""

from __future__ import annotations

import re

ZH = "zh"
EN = "en"
ZH_MIN_HAN_SHARE = 0.3  # ours
JA_MIN_KANA_SHARE = 0.05  # ours: Japanese text mixes kanji with kana; the reference sends it to MeCab, we to "en"

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff]")
_LETTER = re.compile(r"[^\W\d_]")


def detect_natural_language(text: str) -> str:
    """``zh`` for text written mostly in Chinese characters, else ``en``."""
    if text.isascii():  # no Han character (a check in C, before a regex pass over the text)
        return EN
    han = len(_HAN.findall(text))
    if han == 0:
        return EN
    letters = len(_LETTER.findall(text))
    if han < ZH_MIN_HAN_SHARE * letters or len(_KANA.findall(text)) >= JA_MIN_KANA_SHARE * letters:
        return EN
    return ZH


def natural_language_of(text: str, declared: object = None) -> str:
    """The record's declared ``lang`` when it is ``zh`` or another non-empty code (other codes count as ``en``, as
    the reference applies its ``en`` rules to every language but Chinese), else the detected one."""
    if isinstance(declared, str) and declared.strip():
        return ZH if declared.strip().lower() in ("zh", "zh-cn", "zh-hans", "zh-hant", "zh-tw", "cmn") else EN
    return detect_natural_language(text)
