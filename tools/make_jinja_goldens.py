#!/usr/bin/env python3
"""Goldens for flashlm's Jinja subset, from real Jinja2 in the environment
transformers renders chat templates in (its own compile function when it can
be found, else the same settings: trim_blocks, lstrip_blocks, loopcontrols,
ImmutableSandboxedEnvironment, tojson without ASCII escaping).

Usage: python3 tools/make_jinja_goldens.py OUT.json
Each case: template, vars, and either "text" or "error": true.
"""
import json
import sys

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

try:
    from transformers.utils.chat_template_utils import _compile_jinja_template as compile_tpl
except ImportError:
    compile_tpl = None


def fallback_compile(source):
    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env.from_string(source)


MSGS = [{"role": "system", "content": "S"}, {"role": "user", "content": " hi\n"},
        {"role": "assistant", "content": "<think>r</think>\n\nok"}]
V = {"messages": MSGS, "n": 7, "f": 2.5, "s": "Héllo, wörld 😀", "e": "", "none": None,
     "d": {"b": 1, "a": [1, "x", None, True, 2.0], "c": {"k": "v\n\"q\""}}, "l": [3, 1, 2],
     "t": True}

CASES = [
    # whitespace control, trim_blocks, lstrip_blocks, comments
    "a\n{% if t %}\nyes\n{% endif %}\nb",
    "  {% if t %}\n  x\n  {% endif %}\n",
    "a  {% if t %}b{% endif %}  c",
    "a \n  {%- if t -%}  \n b \n  {%- endif %}\nc",
    "{{ 1 }}\n{{ 2 }}\n",
    "x {{- ' y ' -}} z",
    "{# comment #}\nA{# c2 #} B\n  {# c3 #}\nC",
    "a\r\n{% if t %}\r\nb\r\n{% endif %}\r\n",
    "  {%+ if t %}x{% endif %}",
    "{% for m in messages %}\n  {{ m.role }}\n{% endfor %}\n",
    # literals, str() of values, arithmetic
    "{{ 'a\\nb\\t\"c\"' }}|{{ \"it's\" }}|{{ 'x' 'y' }}",
    "{{ 1.0 }} {{ 2.50 }} {{ 1e3 if false else 0.1 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }}",
    "{{ none }}|{{ true }}|{{ false }}|{{ [1, 'a', none, true] }}|{{ {'a': 1, 'b': 'x'} }}|{{ \"a'b\" ~ [\"it's\"] }}",
    "{{ n + 1 }} {{ n - f }} {{ n * 2 }} {{ 'ab' * 3 }} {{ 'a' + 'b' }} {{ [1] + [2] }} {{ n ~ f }}",
    # precedence
    "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ not t and t }} {{ t or t and not t }} {{ 'a' ~ (1 + 2) }} {{ -n ** 2 }} {{ 1 - 2 - 3 }} {{ 2 ** 3 ** 2 }}",
    "{{ 'a' ~ 1 + 2 }}",  # ~ binds tighter than +: ('a' ~ 1) + 2 is an error
    "{{ 'x' if n > 5 else 'y' }} {{ 'x' if n < 5 }}|{{ 'b' in 'abc' }} {{ 'z' not in 'abc' }} {{ 2 in l }} {{ 'a' in d }}",
    "{{ messages[0].content + messages[1]['content'] | trim + '!' }}",
    "{{ n == 7.0 }} {{ 'a' < 'b' }} {{ l == [3, 1, 2] }} {{ d.c == {'k': 'v\\n\"q\"'} }} {{ none == none }}",
    # filters
    "{{ messages | length }} {{ s | length }} {{ d | length }} {{ '  x \\n' | trim }}|{{ s | upper }} {{ s | lower }}",
    "{{ d | tojson }}|{{ s | tojson }}|{{ l | tojson(indent=2) }}|{{ d | tojson(indent=4) }}|{{ [] | tojson(indent=2) }}",
    "{{ undefined_var | default('dflt') }} {{ e | default('dflt') }} {{ e | default('dflt', true) }} {{ l | join('-') }} {{ l | first }} {{ l | last }}",
    "{{ 'a-b-a' | replace('a', 'X') }} {{ d | list }} {% for k, v in d | items %}{{ k }}{% endfor %} {{ '42' | int + 1 }} {{ n | string ~ '!' }} {{ 'hello world' | capitalize }} {{ 'hello world' | title }}",
    # tests
    "{{ n is defined }} {{ nope is defined }} {{ nope is undefined }} {{ none is none }} {{ n is not none }} {{ s is string }} {{ n is number }} {{ f is float }} {{ d is mapping }} {{ l is iterable }} {{ t is true }} {{ t is false }} {{ n is odd }} {{ n is even }}",
    # methods
    "{{ s.startswith('Hé') }} {{ s.endswith('😀') }} {{ '  a b  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '\\n\\na\\n'.lstrip('\\n') }}|{{ 'a\\n\\n'.rstrip() }}|",
    "{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'ABC'.lower() }} {{ ', '.join(['x', 'y']) }} {{ 'aXbX'.replace('X', '-') }}",
    "{{ d.get('b') }} {{ d.get('zz') }} {{ d.get('zz', 5) }} {% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %} {{ d.keys() | list }}",
    "{{ messages[2].content.split('</think>')[-1].lstrip('\\n') }}|{{ messages[2].content.split('</think>')[0].split('<think>')[-1] }}",
    # slices and indexing
    "{{ l[::-1] }} {{ l[1:] }} {{ l[:-1] }} {{ l[::2] }} {{ l[-1] }} {{ l[5] is defined }} {{ s[1:4] }} {{ s[-1] }} {{ s[::-1] }} {{ l[-10:2] }} {{ l[2:0:-1] }}",
    # loops
    "{% for x in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.length }}|{% endfor %}",
    "{% for x in [] %}a{% else %}empty{% endfor %}{% for x in l if x > 1 %}{{ x }}{{ loop.index }}{{ loop.last }}{% endfor %}",
    "{% for x in l %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}|{% for x in 'ab' %}{{ x }}{% endfor %}{% for k in d %}{{ k }}{% endfor %}",
    "{% for a in [1, 2] %}{% for b in [3, 4] %}{{ a }}{{ b }}{{ loop.index }}{% endfor %}{{ loop.index }};{% endfor %}",
    # scoping and namespace
    "{% set x = 1 %}{% for i in l %}{% set x = i %}{% endfor %}{{ x }}|{% set ns = namespace(x=1, y='a') %}{% for i in l %}{% set ns.x = ns.x + i %}{% endfor %}{{ ns.x }}{{ ns.y }}",
    "{% if t %}{% set y = 'in-if' %}{% endif %}{{ y }}|{% for i in [1] %}{% set z = 2 %}{{ z }}{% endfor %}{{ z is defined }}",
    "{% for m in messages[::-1] %}{% set idx = (messages | length - 1) - loop.index0 %}{{ idx }}{{ m.role[0] }}{% endfor %}",
    # if/elif/else
    "{% if n < 5 %}a{% elif n < 8 %}b{% elif n < 10 %}c{% else %}d{% endif %}{% if e %}x{% else %}y{% endif %}",
    # errors
    "{{ raise_exception('bad input') }}",
    "{{ nope.attr }}",
    "{{ 1 + nope }}",
]


def main():
    compile_fn = compile_tpl or fallback_compile
    cases = []
    for source in CASES:
        case = {"template": source, "vars": V}
        try:
            case["text"] = compile_fn(source).render(**V)
        except Exception as e:  # the engine must fail too
            case["error"] = True
            case["message"] = f"{type(e).__name__}: {e}"
        cases.append(case)
    with open(sys.argv[1], "w") as f:
        json.dump({"jinja2": jinja2.__version__, "transformers_compile": compile_tpl is not None,
                   "cases": cases}, f, ensure_ascii=False, indent=1)
    print(f"wrote {len(cases)} cases, jinja2 {jinja2.__version__}, "
          f"transformers compile: {compile_tpl is not None}")
    for c in cases:
        print(repr(c.get("text", c.get("message")))[:150])


if __name__ == "__main__":
    main()
