#!/usr/bin/env python3
"""Make tests/fixtures/tool_call_cases.json: model replies with hermes
<tool_call> blocks and what vLLM makes of each, the reference of
tests/test_reply_parsers.c.

Only the Python standard library: vLLM's Hermes2ProToolParser.extract_tool_calls
(the whole-reply path) is json.loads of each block found by its pattern
<tool_call>(.*?)</tool_call>|<tool_call>(.*), then each call's name and
json.dumps(arguments, ensure_ascii=False); any failure (a block that is not
JSON, a missing name or arguments, a name that is not a string) makes the
reply no call, all content. That logic is restated below from vLLM's
source, and Python's json module does the parsing and the writing, so the
expected arguments are Python's own json.dumps (separators, escapes, float
repr) and not flashlm's.

For each case the file holds:
  text       the reply
  calls      [[name, arguments], ...] as vLLM gives them ([] when malformed)
  malformed  whether vLLM's parse failed
  content    vLLM's content (the text before the first block, null if empty),
             with the whitespace before the block left out as flashlm does
             (flashlm leaves out the whitespace next to a block); for a
             malformed reply null: flashlm's parser gives the text outside
             what it could read, and the response then shows the whole text
and "floats": [text, json.dumps(float(text))] pairs, Python's float repr.

  python3 tools/make_tool_call_cases.py   (writes the file; run from the repo root)
"""
import json
import re

PATTERN = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(.*)", re.DOTALL)

CASES = [
    # as Qwen3 writes them
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n</tool_call>\n'
    '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>',
    'Let me look that up.\n\n<tool_call>\n{"name": "search", "arguments": {"q": "vLLM"}}\n</tool_call>',
    # spacing and member order
    '<tool_call>{"name":"f","arguments":{"a":1,"b":[1,2,{"c":null}]}}</tool_call>',
    '<tool_call>\n  {  "name" :  "f" ,\n "arguments" : { "x" : true , "y" : false }  }  \n</tool_call>',
    '<tool_call>{"arguments": {"k": "v"}, "name": "args_first"}</tool_call>',
    '<tool_call>{"name": "f", "id": 7, "arguments": {"n": 1}, "extra": [1, {"x": "y"}]}</tool_call>',
    # numbers as Python writes them back
    '<tool_call>{"name": "n", "arguments": {"a": 1.0, "b": 100.0, "c": 1e5, "d": 1E-7, "e": 0.1, '
    '"f": -0, "g": -0.0, "h": 12345678901234567890123, "i": 1.5e300, "j": 0.0001, "k": 1e16, "l": 1e15, '
    '"m": 2.50, "o": 3.14159265358979311, "p": -12.5e-3}}</tool_call>',
    # strings: escapes, unicode, quotes
    '<tool_call>{"name": "s", "arguments": {"a": "line\\nbreak\\ttab", "b": "quote \\" and \\\\ back", '
    '"c": "\\u00e9t\\u00e9", "d": "\\ud83d\\ude00", "e": "\\/slash", "f": "caf\u00e9 \u65e5\u672c", '
    '"g": "\\u0001\\u001f\\b\\f\\r", "h": "\\uD83D\\uDE00"}}</tool_call>',
    '<tool_call>{"name": "caf\\u00e9", "arguments": {}}</tool_call>',
    # arguments of other kinds
    '<tool_call>{"name": "f", "arguments": "a string"}</tool_call>',
    '<tool_call>{"name": "f", "arguments": [1, "two", 3.0]}</tool_call>',
    '<tool_call>{"name": "f", "arguments": null}</tool_call>',
    '<tool_call>{"name": "f", "arguments": 42}</tool_call>',
    # unclosed but complete: the pattern's second branch
    '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n',
    '<tool_call>{"name": "f", "arguments": {"a": 1}}',
    # malformed: vLLM gives the whole text as content
    '<tool_call>\n{"name": "f", "arguments": {"a": 1}\n</tool_call>',
    '<tool_call>{"name": "f"}</tool_call>',
    '<tool_call>{"arguments": {}}</tool_call>',
    '<tool_call>{"name": 5, "arguments": {}}</tool_call>',
    '<tool_call>not json</tool_call>',
    '<tool_call>{"name": "f", "arguments": {"a": 01}}</tool_call>',
    '<tool_call>{"name": "f", "arguments": {"a": 1,}}</tool_call>',
    '<tool_call>{"name": "f", "arguments": {"a": "raw\tcontrol"}}</tool_call>',
    '<tool_call>{"name": "f", "arguments": {"a": "bad \\x escape"}}</tool_call>',
    '<tool_call>{"name": "f", "arguments": {"a": 1}} trailing</tool_call>',
    '<tool_call>[{"name": "f", "arguments": {}}]</tool_call>',
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Par',
    '<tool_call>{"name": "ok", "arguments": {}}</tool_call>\n<tool_call>{"name": "bad", "arguments": }</tool_call>',
    # no block: all content
    'Just an answer.',
    'Mentions </tool_call> and <tool_ but no block.',
]


# floats as Python's repr writes them (what json.dumps writes of a float)
FLOATS = ["0.1", "1.0", "100.0", "1e5", "1e15", "1e16", "1e22", "1e-4", "1e-5", "5e-324", "2.2250738585072014e-308",
          "1.7976931348623157e308", "123456789.125", "9007199254740993", "0.30000000000000004", "-2.5e-10",
          "3.0e2", "1234567890123456.7", "12345678901234567.0", "0.000123456", "-0.0", "6.02214076e23", "1e400"]


def vllm_extract(text):
    """(calls, content, malformed) as Hermes2ProToolParser.extract_tool_calls."""
    if "<tool_call>" not in text:
        return [], text, False
    try:
        raw = [json.loads(m[0] if m[0] else m[1]) for m in PATTERN.findall(text)]
        calls = []
        for c in raw:
            name = c["name"]
            if not isinstance(name, str):  # pydantic's FunctionCall(name: str) refuses it
                raise TypeError(name)
            calls.append([name, json.dumps(c["arguments"], ensure_ascii=False)])
        content = text[:text.find("<tool_call>")]
        return calls, content if content else None, False
    except Exception:
        return [], text, True


def main():
    out = []
    for text in CASES:
        calls, content, malformed = vllm_extract(text)
        if malformed:
            content = None
        elif calls and content is not None:
            content = content.rstrip(" \t\r\n") or None
        out.append({"text": text, "calls": calls, "malformed": malformed, "content": content})
    with open("tests/fixtures/tool_call_cases.json", "w", encoding="utf-8") as f:
        json.dump({"source": "tools/make_tool_call_cases.py (vLLM's Hermes2ProToolParser.extract_tool_calls "
                   "restated; Python's json module)", "cases": out,
                   "floats": [[t, json.dumps(float(t))] for t in FLOATS]}, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
