"""OpenCoder's SFT text format, as constants the CLI can import without loading torch (``oc_megatron.data.sft``
uses them to render and mask conversations)."""

from __future__ import annotations

from typing import Literal

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
ASSISTANT_HEADER = f"{IM_START}assistant\n"
# OpenCoder's system prompt, which their tokenizer's chat template adds to a conversation without one
# (docs/opencoder.md §4, model card tokenizer config): the default of `sft-data --system-prompt`.
OPENCODER_SYSTEM_PROMPT = "You are OpenCoder, created by OpenCoder Team."
# What follows an answer inside its trained span, before <|im_end|>, per target format: OpenCoder's released
# finetune.py trains `output + "\n<|im_end|>"` (docs/opencoder.md §4); a chat template renders `content<|im_end|>`.
TARGET_SUFFIX = {"opencoder": "\n", "template": ""}
SFTTarget = Literal["opencoder", "template"]
