#!/usr/bin/env python3
"""Goldens for flashlm's Jinja subset, from real Jinja2 in the environment
transformers renders chat templates in: its own compile function when
transformers is installed, else the same environment built here from what
transformers' chat_template_utils sets (ImmutableSandboxedEnvironment with
trim_blocks, lstrip_blocks and loopcontrols; tojson as json.dumps with
ensure_ascii=False, indent, separators, sort_keys; the globals
raise_exception and strftime_now; the {% generation %} tag).

Usage: python3 tools/make_jinja_goldens.py OUT.json
Each case: template, vars, and either "text" or "error": true.
"""
import datetime
import json
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

try:
    from transformers.utils.chat_template_utils import _compile_jinja_template as compile_tpl
except ImportError:
    compile_tpl = None


class GenerationTag(jinja2.ext.Extension):
    """transformers' {% generation %}...{% endgeneration %}: renders its body
    (transformers also records where, for assistant masks)."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


def fallback_compile(source):
    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


def compile_template(source):
    return (compile_tpl or fallback_compile)(source)


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
    # floats as Python's str(): positional for exponents in [-4, 16)
    "{{ 10.0 }} {{ 100.0 }} {{ 1e15 }} {{ 1e16 }} {{ 0.0001 }} {{ 0.00001 }} {{ 2.5 }} {{ -0.0 }} {{ f * 4 }} "
    "{{ 1.0 / 3 }} {{ [1.5, 20.0] }} {{ {'x': 1e20} }}",
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
    # macros: defaults (which may name earlier parameters), keyword
    # arguments, varargs/kwargs, scoping, recursion, calls in expressions
    "{% macro m(a, b='d', c=none) %}[{{ a }}|{{ b }}|{{ c }}]{% endmacro %}{{ m(1) }}{{ m(1, 2) }}{{ m(1, c=3) }}{{ m(b='B', a='A') }}{{ m() }}",
    "{% macro m(a, b=a ~ '!') %}{{ b }}{% endmacro %}{{ m('x') }}{{ m('x', 'y') }}",
    "{% macro m(a) %}{{ a }}|{{ varargs }}|{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, z=4) }}/{{ m(1) }}",
    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}",
    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, z=2) }}",
    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, a=2) }}",
    "{% macro m(a=1, b) %}{% endmacro %}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{% set x = 1 %}{% macro m() %}{{ x }}{% set x = 5 %}{{ x }}{% endmacro %}{% set x = 2 %}{{ m() }}{{ x }}",
    "{% macro m(x) %}{% if x %}{% set y = 1 %}{% endif %}{{ y }}{% for i in l %}{% set z = i %}{% endfor %}{{ z is defined }}{% endmacro %}{{ m(true) }}|{{ m(false) }}",
    "{% set ns = namespace(v=[]) %}{% macro add(x) %}{% set ns.v = ns.v + [x] %}{% endmacro %}{{ add(1) }}{{ add(2) }}{{ ns.v }}",
    "{% macro outer(n) %}{% macro inner() %}[{{ n }}]{% endmacro %}{{ inner() }}{% endmacro %}{{ outer(3) }}{{ inner is defined }}",
    "{% for i in l %}{% macro m() %}{{ i }}{{ loop.index }}{% endmacro %}{{ m() }};{% endfor %}{{ m is defined }}",
    "{% macro m() %}{{ loop is defined }}{% endmacro %}{% for i in [1] %}{{ m() }}{% endfor %}",
    "{{ m() }}{% macro m() %}x{% endmacro %}",
    "{% macro m(s) %}\n  {{- s|upper -}}\n{% endmacro %}[{{ m('a') + m('b') }}]{{ m('c')|length }}{{ m('d') is string }}",
    "{% macro m() %}  x  {%- endmacro %}[{{ m() }}]{{ m }}|{{ m is defined }}{{ m is callable }}{{ strftime_now is defined }}{{ raise_exception is callable }}{{ range is defined }}{{ nope is callable }}",
    "{% if t %}{% macro m() %}in-if{% endmacro %}{% endif %}{{ m() }}",
    "{% macro ty(s) %}{% if s.type == 'array' %}list[{{ ty(s['items']) }}]{% elif s.type is string %}{{ s.type }}{% elif s.type is iterable %}Union[{% for t in s.type %}{{ ty({'type': t}) }}{% if not loop.last %},{% endif %}{% endfor %}]{% else %}Any{% endif %}{% endmacro %}{{ ty({'type': 'array', 'items': {'type': 'array', 'items': {'type': ['string', 'null']}}}) }} {{ ty({}) }} {{ ty({'type': 'array'}) }}",
    # {% set %} and {% filter %} blocks: filters with arguments, scoping, targets
    "{% set x %}a{{ n }}b{% set inner = 3 %}{% endset %}[{{ x }}]{{ inner is defined }}{% set y | upper | trim %} ab {% endset %}[{{ y }}]",
    "{% set x = 1 %}{% set x %}{{ x }}2{% endset %}{{ x }}|{% set ns = namespace(a=1) %}{% set ns.b %}blk{% endset %}{{ ns.b }}|{% set a, b %}xy{% endset %}{{ a }}{{ b }}",
    "{% filter upper %}ab{{ s }}{% set q = 1 %}{% endfilter %}{{ q is defined }}|{% filter replace('a', 'b') | trim %}  aXa  {% endfilter %}|{% filter tojson %}x\"{% endfilter %}",
    "{% filter upper %}a{% filter replace('b', 'c') %}b{% endfilter %}d{% endfilter %}|{% for i in l %}{% filter string %}{{ i }}{% endfilter %}{% endfor %}",
    "{% set x | nosuchfilter %}{% endset %}",
    # break and continue belong in loops (also not in a macro or block inside one)
    "a{% break %}b",
    "{% for i in l %}{% macro m() %}{% continue %}{% endmacro %}{% endfor %}",
    # map: attribute paths with indices and defaults, filter names with arguments
    "{{ [{'a': {'b': 1}}, {'a': {'b': 2}}, {'a': 3}] | map(attribute='a.b') | list }}|{{ [{'a': [5, 6]}] | map(attribute='a.1') | list }}|{{ [{'a': 1}, {}] | map(attribute='a', default='D') | list }}|{{ [[1, 2]] | map(attribute='0') | list }}",
    "{{ [' a ', 'b '] | map('trim') | list }}{{ ['a', 'b'] | map('upper') | join(',') }}{{ [1, 'x', nope] | map('default', 'z') | list }}{{ ['a-b'] | map('replace', '-', '+') | first }}{{ [1, 2] | map('string') | join }}{{ nope | map('upper') | list }}{{ messages | map(attribute='role') | join(' ') }}",
    "{{ [{}] | map(attribute='a.b') | list }}",
    "{{ [1, 2] | map('nosuchfilter') | list }}",
    # select / reject / selectattr / rejectattr with each test
    ("{{ l|selectattr('text')|list|length }}{{ l|selectattr('text', 'defined')|list|length }}{{ l|selectattr('text', 'undefined')|list|length }}{{ l|selectattr('n', 'none')|list|length }}{{ l|rejectattr('n', 'none')|list|length }}{{ l|selectattr('type', 'equalto', 'text')|map(attribute='text')|map('trim')|join('+') }}",
     {"l": [{"type": "text", "text": " a ", "n": None, "k": 1}, {"type": "image", "n": 2, "k": 2.5}, {"type": "text", "text": "b", "k": True}]}),
    ("{{ l|selectattr('k', 'eq', 1)|list|length }}{{ l|selectattr('k', '==', 1)|list|length }}{{ l|selectattr('k', 'ne', 1)|list|length }}{{ l|selectattr('k', '!=', 1)|list|length }}{{ l|selectattr('n', 'number')|list|length }}{{ l|selectattr('type', 'string')|list|length }}{{ l|selectattr('type', 'in', ['image', 'x'])|list|length }}{{ l|selectattr('type', 'sameas', 'text')|list|length }}{{ l|selectattr('k', 'true')|list|length }}{{ l|selectattr('k', 'boolean')|list|length }}{{ l|selectattr('k', 'integer')|list|length }}{{ l|selectattr('k', 'float')|list|length }}{{ l|selectattr('k', 'gt', 1)|list|length }}{{ l|selectattr('k', 'le', 1)|list|length }}{{ l|rejectattr('type', 'equalto', 'text')|list }}",
     {"l": [{"type": "text", "text": " a ", "n": None, "k": 1}, {"type": "image", "n": 2, "k": 2.5}, {"type": "text", "text": "b", "k": True}]}),
    "{{ [1, 0, 2, none, '', 'a']|select|list }}{{ [1, 2, 3, 4]|select('odd')|list }}{{ [1, 2, 3, 4]|reject('odd')|list }}{{ [1, 2, 3]|select('gt', 1)|list }}{{ [1, 'a', nope]|select('string')|list }}{{ [3, 6, 7]|select('divisibleby', 3)|list }}{{ ['a', 'B', 'c']|select('lower')|list }}{{ ['a', 'B']|select('upper')|list }}{{ [d, l, 1]|select('mapping')|list|length }}{{ [l, 'x', 1]|select('sequence')|list|length }}{{ [1, none]|reject('none')|list }}{{ [1, 1.5, true]|select('number')|list }}{{ nope|select|list }}",
    "{{ [{'a': 1}]|selectattr('a', 'nosuchtest')|list }}",
    "{{ l|selectattr('type', test_name)|list }}",
    # dictsort: by key or value, case, reverse
    ("{{ x | dictsort }}|{{ x | dictsort(by='value') }}|{{ x | dictsort(reverse=true) }}|{{ x | dictsort(true) }}|{% for k, v in x|dictsort %}{{ k }}={{ v }};{% endfor %}", {"x": {"b": 2, "A": 3, "a": 1, "c": 2}}),
    ("{{ x | dictsort(by='value') }}", {"x": {"b": 2, "a": "x"}}),
    ("{{ x | dictsort(by='nope') }}", {"x": {"b": 2}}),
    # loop: cycle, previtem/nextitem, depth
    "{% for x in l %}{{ loop.cycle('a', 'b') }}{{ loop.previtem }}{{ loop.nextitem }}{{ loop.depth }}{{ loop.depth0 }}|{% endfor %}{% for x in l if x > 1 %}{{ loop.cycle(1, 2, 3) }}{{ loop.previtem is defined }}{% endfor %}",
    # tuples: literals, printing, equality, operations, unpacking
    "{{ (1, 2) }}|{{ (1,) }}|{{ () }}|{{ 1, 'a' }}|{{ (1, 2) == [1, 2] }}|{{ (1, 2) == (1, 2) }}|{{ (1, 2) + (3,) }}|{{ (1, 'a')|tojson }}|{{ (1, 2)|list }}|{{ ((1, 2),)[0][1] }}|{{ [(1, 2)] }}|{{ {'a': (1,)} }}|{{ (1, 2) ~ '' }}|{{ (1, 2)|join('-') }}|{{ (1, 2) in [(1, 2)] }}|{{ [1, 2] in [(1, 2)] }}|{{ ('a', 'b')[::-1] }}|{{ (1, 2)|length }}|{{ (nope, 1) }}",
    "{{ (1, 2) + [3] }}",
    "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set (c, d) = [3, 4] %}{{ c }}{{ d }}{% set e, f = 'xy' %}{{ e }}{{ f }}{% set g, h = d.a[:2] %}{{ g }}{{ h }}",
    "{% for a, (b, c) in [(1, (2, 3)), (4, [5, 6])] %}{{ a }}{{ b }}{{ c }};{% endfor %}{% for a, b, c in [[1, 2, 3]] %}{{ a }}{{ b }}{{ c }}{% endfor %}{% for x in 1, 2 %}{{ x }}{% endfor %}{% for k, v in d|items %}{{ k }}{% endfor %}{% for k, v in {'ab': 1} %}{{ k }}{{ v }}{% endfor %}",
    "{% set a, b = [1, 2, 3] %}",
    "{% set a, b, c = [1, 2] %}",
    "{% set a, b = 5 %}",
    "{% set a, b = nope %}",
    "{% for a, b in [[1, 2, 3]] %}{% endfor %}",
    "{% set true = 1 %}",
    # % formatting with tuples, dicts, and every conversion
    "{{ '%s-%s' % (1, 'a') }}|{{ '%d' % 3.7 }}|{{ '%r' % 'x' }}|{{ '%.2f' % 3.14159 }}|{{ '%(a)s+%(b)d' % {'a': 'x', 'b': 2} }}|{{ '%5s|%-5s|%05d|%+d|%x|%X|%o|%#x|%#o|%e|%g|%%' % ('ab', 'cd', 42, 5, 255, 255, 8, 255, 8, 12345.678, 0.0001) }}",
    "{{ '%s' % [1, 2] }}|{{ '%s' % {'a': 1} }}|{{ 'abc' % [] }}|{{ 'abc' % {} }}|{{ '%s' % none }}|{{ '%s' % true }}|{{ '%d' % true }}|{{ '%s' % 1.0 }}|{{ '%r' % 1.5 }}|{{ '%s' % (1,) }}|{{ '%s' % ((1, 2),) }}|{{ '%r' % [nope, 'a'] }}|{{ '%s' % nope }}|{{ 'x' % nope }}",
    "{{ '%x' % -255 }}|{{ '%c' % 65 }}|{{ '%c' % 'z' }}|{{ '%c' % 233 }}|{{ '%5.1f' % 2.25 }}|{{ '%*d' % (5, 3) }}|{{ '%*d' % (-5, 3) }}|{{ '%.*f' % (2, 1.5) }}|{{ '%.3s' % 'abcdef' }}|{{ '%5s' % 'é' }}|{{ '%i' % 7 }}|{{ '%u' % 7 }}|{{ '%a' % 'é😀' }}|{{ '%-05d' % 3 }}|{{ '%+05d' % -3 }}|{{ '%#5x' % 255 }}|{{ '%05x' % -255 }}|{{ '%.3d' % -5 }}|{{ '% d' % 5 }}|{{ '%ld' % 5 }}|{{ '%#g' % 1.0 }}|{{ '%E' % 1e100 }}|{{ '%G' % 1e-10 }}|{{ '%F' % (1e300 * 1e300) }}|{{ '%(a)s%(a)s' % {'a': 1} }}|{{ '%s %(x)s' % {'x': 1} }}",
    "{{ 'x%sy'|format(1) }}{{ '%s-%s'|format(1, 2) }}{{ '%(a)s'|format(a=3) }}{{ n ~ '%' }}{{ 7 % 3 }}{{ -7.5 % 2 }}",
    "{{ 'abc' % 5 }}",
    "{{ '%s %s' % (1,) }}",
    "{{ '%s' % (1, 2) }}",
    "{{ '%d' % 'x' }}",
    "{{ '%x' % 1.5 }}",
    "{{ '%(x)s' % {} }}",
    "{{ '%z' % 1 }}",
    "{{ '%' % 1 }}",
    "{{ '%(x)s %s' % {'x': 1} }}",
    "{{ '%s %s' % [1, 2] }}",
    "{{ '%(x' % {} }}",
    # tojson: transformers' keyword arguments; what JSON cannot hold
    "{{ d|tojson(sort_keys=true) }}|{{ d|tojson(separators=(',', ':')) }}|{{ s|tojson(ensure_ascii=true) }}|{{ d|tojson(indent=2, separators=(', ', ' = ')) }}|{{ d|tojson(indent=1, sort_keys=true) }}|{{ [s, '\x7f']|tojson(true) }}",
    "{{ nope|tojson }}",
    "{{ [1, nope]|tojson }}",
    "{{ range|tojson }}",
    # undefined, as transformers' environment has it (Jinja's default Undefined)
    "{{ nope }}|{{ nope|length }}|{{ nope|trim }}|{{ nope|upper }}|{{ nope|join }}|{{ nope|list }}|{{ nope|first }}|{{ nope|last }}|{{ nope|string }}|{{ nope ~ 'a' }}|{{ nope is none }}|{{ [nope] }}|{{ {'a': nope} }}|{{ nope|items|list }}|{{ nope|selectattr('a')|list }}|{{ nope == nope }}|{{ nope != 1 }}|{{ 'a' in nope }}|{{ nope is iterable }}|{{ nope|default }}|{{ nope|count }}|{{ d['x'] is defined }}|{{ none.attr }}|{{ l.attr }}|{{ nope|sort }}|{{ nope|unique|list }}|{{ nope|sum }}|{{ nope|min }}|{% for x in nope %}a{% else %}e{% endfor %}",
    "{{ nope|int }}",
    "{{ nope|float }}",
    "{{ nope|dictsort }}",
    "{{ nope < 1 }}",
    "{{ nope() }}",
    "{{ nope[0] }}",
    "{{ d.x.y }}",
    "{{ nope|indent }}",
    "{% for x in none %}{% endfor %}",
    "{% for x in 5 %}{% endfor %}",
    "{{ none|list }}",
    "{{ none|length }}",
    "{{ 'a' in none }}",
    "{{ 1 in 'abc' }}",
    "{% set a, b = none %}",
    # other filters and tests templates use
    "{{ [3, 1, 2]|sort }}{{ ['b', 'A', 'a']|sort }}{{ ['b', 'A', 'a']|sort(case_sensitive=true) }}{{ [3, 1, 2]|sort(true) }}{{ [{'a': 2}, {'a': 1}]|sort(attribute='a') }}{{ [[2, 1], [1, 2], [1]]|sort }}{{ [(2, 1), (1, 2)]|sort }}{{ [true, 0, 2.5]|sort }}{{ [1, 2, 1, 'a', 'A']|unique|list }}{{ ['a', 'A']|unique(true)|list }}{{ [1, 2]|reverse|list }}{{ 'abc'|reverse }}{{ [1, 2.5]|sum }}{{ [{'k': 1}, {'k': 2}]|sum(attribute='k') }}{{ [3, 1]|min }}{{ [3, 1]|max }}{{ ['a', 'B']|max }}{{ []|min }}",
    "{{ [1, 'a']|sort }}",
    "{{ 3.14159|round(2) }}{{ 2.5|round }}{{ 3.5|round }}{{ 2|round }}{{ 2.7|round(0, 'floor') }}{{ 2.1|round(0, 'ceil') }}{{ '3.5'|float }}{{ 2|float }}{{ 'x'|float }}{{ '3.7'|int }}{{ ' 42 '|int }}{{ 'x'|int }}{{ 'x'|int(5) }}{{ 4.9|int }}{{ none|int }}{{ '1_000'|int }}",
    "{{ 'a\nb\n\nc'|indent }}|{{ 'a\nb'|indent(2, true) }}|{{ 'a\nb\n'|indent(first=true, blank=true) }}|{{ 'a\r\nb'|indent('> ') }}|{{ ''|indent(first=true) }}|{{ 'a\n\n'|indent(1) }}|{{ '<b>'|safe }}|{{ 5|trim }}|{{ messages|first|dictsort|first }}",
    "{{ 3 is divisibleby 3 }}{{ 2 is in [1, 2] }}{{ 2 is lt 3 }}{{ 'a' is lower }}{{ 'A' is upper }}{{ 'A1' is upper }}{{ '1' is lower }}{{ 2 is ge 2 }}{{ d is eq d }}{{ true is number }}{{ true is integer }}{{ d is sequence }}{{ 1 is iterable }}{{ none is sameas none }}{{ l is sameas l }}{{ [] is sameas [] }}{{ namespace() is mapping }}{{ not nope is defined }}{{ d is mapping }}",
    # brackets inside a tag: its end is outside them, as Jinja's lexer finds it
    "{{ {'a': {'b': 1}} }}|{{ {'a': {'b': {'c': [1, {'d': 2}]}}}['a']['b'] }}|{% set x = {'a': {'b': 1}}%}{{ x }}|{{ '}}' ~ ('%}') }}",
    # an item that is missing falls back to the attribute: a dict's methods
    "{{ {}['items'] is callable }}{{ d['keys'] is defined }}{{ d['nope'] is defined }}{{ {'items': 1}['items'] }}",
    "{{ dict(a=1, b=[2]) }}{{ namespace({'a': 1}, b=2).a }}{{ namespace({'a': 1}, b=2).b }}{{ {'items': 1}['items'] }}{{ {'items': 1}.items is callable }}{{ {'x': 1}.x }}",
]


def main():
    cases = []
    for entry in CASES:
        source, extra = entry if isinstance(entry, tuple) else (entry, {})
        vars_ = {**V, **extra}
        case = {"template": source, "vars": vars_}
        try:
            case["text"] = compile_template(source).render(**vars_)
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
