#!/usr/bin/env python3
"""diff.py - differential test of hearth's Jinja2 interpreter against Python's jinja2.

For every fixture chat template (../shared/fixtures/templates) it generates random
conversations (with or without a system prompt, several turns, tool calls whose
arguments are JSON strings or objects, tool results, Chinese and emoji text, content
given as a list of parts, reasoning_content, odd whitespace, enable_thinking on, off
or absent), renders each with jinja2 in the environment transformers builds and with
`build/hearth template`, and reports every difference: the text must be byte for
byte the same, and where jinja2 raises hearth must fail too (with exactly the message
for raise_exception).

    tests/jinja/diff.py [--seed N] [--per-template N] [--hearth build/hearth]

Exits 0 when there is no difference, 1 otherwise; prints a skip message and exits 0
when jinja2 is not installed (Debian: apt-get install python3-jinja2).
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from datetime import datetime

try:
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError:
    print("tests/jinja/diff.py: skipped: python3-jinja2 is not installed (apt-get install python3-jinja2)")
    sys.exit(0)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIX = os.path.normpath(os.path.join(ROOT, "..", "shared", "fixtures", "templates"))
DATE = datetime(2026, 11, 28)


class RaisedByTemplate(Exception):
    pass


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return DATE.strftime(fmt)


class Generation(jinja2.ext.Extension):
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.Scope(body, lineno=lineno)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                       extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


WORDS = ["hello", "world", "天气", "北京", "😀", "🚀", "naïve", "café", "the", "answer", "is", "42", "<b>",
         "&", "\"quoted\"", "'single'", "tab\there", "line\nbreak", "  spaced  ", "\u00a0nbsp", "\u3000全角",
         "<|im_start|>", "[INST]", "{{ x }}", "{% raw %}", "\\backslash", "emoji🎉party", "Ω≈ç√", "ok."]


def text(rng, lo=1, hi=8):
    s = " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))
    r = rng.random()
    if r < 0.1:
        s = "  " + s
    elif r < 0.2:
        s = s + "\n\n"
    elif r < 0.25:
        s = "\n" + s + " "
    return s


def content(rng):
    r = rng.random()
    if r < 0.12:
        return [{"type": "text", "text": text(rng)} for _ in range(rng.randint(1, 2))]
    if r < 0.15:
        return ""
    return text(rng)


def tool_call(rng, i):
    args = {"location": rng.choice(["Paris, France", "东京", "São Paulo"]), "days": rng.randint(1, 9)}
    if rng.random() < 0.3:
        args["units"] = rng.choice(["celsius", "fahrenheit"])
    if rng.random() < 0.5:
        args = json.dumps(args, ensure_ascii=rng.random() < 0.5)
    return {"id": "call%05d" % rng.randint(0, 99999) if rng.random() < 0.5 else "abc%06d" % i,
            "type": "function", "function": {"name": rng.choice(["get_weather", "search_web"]), "arguments": args}}


TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city, °C or °F.",
     "parameters": {"type": "object", "properties": {
         "location": {"type": "string", "description": "City, e.g. \"Paris\" & <region>"},
         "days": {"type": "integer", "description": "days ahead", "default": 1},
         "units": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["location"]}}},
    {"type": "function", "function": {"name": "search_web", "description": "Search the web.",
     "parameters": {"type": "object", "properties": {
         "query": {"type": "string"}, "max_results": {"type": "number", "default": 2.5},
         "safe": {"type": "boolean", "default": False},
         "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["query"]}}},
]


def conversation(rng):
    msgs = []
    if rng.random() < 0.5:
        msgs.append({"role": "system", "content": content(rng)})
    for turn in range(rng.randint(1, 3)):
        msgs.append({"role": "user", "content": content(rng)})
        if turn == 0 or rng.random() < 0.8:
            r = rng.random()
            if r < 0.25:
                calls = [tool_call(rng, k) for k in range(rng.randint(1, 2))]
                msgs.append({"role": "assistant", "content": None if rng.random() < 0.6 else text(rng),
                             "tool_calls": calls})
                for cl in calls:
                    res = json.dumps({"temp": rng.randint(-5, 30), "sky": rng.choice(["sunny", "多云"])},
                                     ensure_ascii=False) if rng.random() < 0.7 else text(rng)
                    msgs.append({"role": "tool", "tool_call_id": cl["id"], "name": cl["function"]["name"],
                                 "content": res})
                msgs.append({"role": "assistant", "content": text(rng)})
            elif r < 0.45:
                msgs.append({"role": "assistant", "content": text(rng),
                             "reasoning_content": text(rng, 2, 10)})
            elif r < 0.55:
                msgs.append({"role": "assistant", "content": "<think>\n" + text(rng) + "\n</think>\n\n" + text(rng)})
            else:
                msgs.append({"role": "assistant", "content": content(rng)})
    if rng.random() < 0.3 and msgs[-1]["role"] != "user":
        msgs.append({"role": "user", "content": text(rng)})
    return msgs


def variables(rng, meta):
    v = {"messages": conversation(rng), "tools": TOOLS if rng.random() < 0.4 else None, "documents": None,
         "add_generation_prompt": rng.random() < 0.7}
    if meta.get("bos_token") is not None:
        v["bos_token"] = meta["bos_token"]
    if meta.get("eos_token") is not None:
        v["eos_token"] = meta["eos_token"]
    r = rng.random()
    if r < 0.3:
        v["enable_thinking"] = True
    elif r < 0.6:
        v["enable_thinking"] = False
    return v


def python_render(tmpl, v):
    try:
        return True, tmpl.render(**v), None
    except jinja2.exceptions.TemplateError as e:
        if type(e) is jinja2.exceptions.TemplateError:
            return False, None, str(e)
        return False, None, None
    except Exception:
        return False, None, None


def hearth_render(hearth, path, v, tmp):
    mfile = os.path.join(tmp, "m.json")
    with open(mfile, "w", encoding="utf-8") as f:
        json.dump({"messages": v["messages"], "tools": v["tools"],
                   "add_generation_prompt": v["add_generation_prompt"]}, f, ensure_ascii=False)
    args = [hearth, "template", "--chat-template", path, "--messages", mfile, "--date", "2026-11-28"]
    if v["add_generation_prompt"]:
        args.append("--add-generation-prompt")
    for k, x in v.items():
        if k not in ("messages", "tools", "documents", "add_generation_prompt"):
            args += ["--var", "%s=%s" % (k, json.dumps(x))]
    p = subprocess.run(args, capture_output=True, timeout=60)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace").strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=20261128)
    ap.add_argument("--per-template", type=int, default=12)
    ap.add_argument("--hearth", default=os.path.join(ROOT, "build", "hearth"))
    a = ap.parse_args()
    meta = {t["name"]: t for t in json.load(open(os.path.join(FIX, "templates.json")))["templates"]}
    env = environment()
    rng = random.Random(a.seed)
    n = bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(meta):
            if meta[name].get("identical_to"):
                continue
            path = os.path.join(FIX, meta[name]["file"])
            tmpl = env.from_string(open(path, encoding="utf-8").read())
            for _ in range(a.per_template):
                v = variables(rng, meta[name])
                ok, out, raised = python_render(tmpl, v)
                rc, hout, herr = hearth_render(a.hearth, path, v, tmp)
                n += 1
                if ok:
                    same = rc == 0 and hout == out.encode("utf-8")
                else:
                    same = rc != 0 and (raised is None or herr == raised)
                if not same:
                    bad += 1
                    if bad <= 10:
                        print("DIFF %s: jinja2 %s, hearth rc %d %s" % (
                            name, "ok" if ok else "raised %r" % raised, rc, herr[:200]))
                        if ok and rc == 0:
                            h = hout.decode("utf-8", "replace")
                            i = next((i for i in range(min(len(h), len(out))) if h[i] != out[i]),
                                     min(len(h), len(out)))
                            print("  jinja2: %r\n  hearth: %r" % (out[max(0, i - 60):i + 60], h[max(0, i - 60):i + 60]))
                        print("  vars: %s" % json.dumps(v, ensure_ascii=False)[:400])
    print("tests/jinja/diff.py: %d renders, %d differences (seed %d)" % (n, bad, a.seed))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
