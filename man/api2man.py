#!/usr/bin/env python3
"""api2man.py - the section 3 man pages of lfpool, generated from docs/API.md.

Owns: the translation of docs/API.md (the one source of the reference) into
man(7) pages.  Invariant: every page says what API.md says, and every
prototype in a SYNOPSIS is a declaration of include/lfpool.h (the build
fails otherwise), so the pages, the reference and the header cannot drift.

    api2man.py API.md lfpool.h VERSION OUTDIR PAGE.3...

PAGE.3... are the outputs meson expects (man/meson.build); the script fails
when API.md defines another set, naming what to add or remove there.

How API.md drives it: a heading followed by the comment
    <!-- man: NAME[, NAME...] - one-line description -->
starts the page NAME.3 (its body is the DESCRIPTION; the other names get
link pages, `.so man3/NAME.3`); `<!-- man: +NAME -->` appends the section
to page NAME; `<!-- man: none -->` keeps it out.  Subsections belong to their parent's page; a section with
neither (nor a parent with one) stays out of the man pages.  In a page,
`##` headings become .SH, deeper ones .SS; the first ```c block of a
function section is its SYNOPSIS, and its `| return | meaning |` table
becomes RETURN VALUE (rows not naming an error) and ERRORS.
"""

import os
import re
import sys

MARK = re.compile(r'^<!--\s*man:\s*(.*?)\s*-->\s*$')
HEAD = re.compile(r'^(#{1,6})\s+(.*?)\s*$')
DECL = re.compile(r'^[A-Za-z_][\w \t*]*?\b(lfpool_\w+)\s*\([^;]*\)\s*;')
ERRNAME = re.compile(r'^(`?E[A-Z0-9]+`?|.*errno.*|other)$')


def die(msg):
    sys.stderr.write('api2man.py: %s\n' % msg)
    sys.exit(1)


def norm(s):
    return ' '.join(s.replace('*', ' * ').replace('(', ' ( ').replace(')', ' ) ')
                    .replace(',', ' , ').replace(';', ' ; ').split())


# ------------------------------------------------------------ inline text

def esc(s):
    """Escape plain text for troff (backslashes, non-ASCII)."""
    s = s.replace('\\', '\\e')
    out = []
    for ch in s:
        if ch == '\u00a7':
            out.append('\\(sc')
        elif ord(ch) > 127:
            die('non-ASCII character %r: add a troff escape for it' % ch)
        else:
            out.append(ch)
    return ''.join(out)


INLINE = re.compile(r'(`[^`]+`)|(\*\*.+?\*\*)|(\*[^*\s][^*]*?\*)|(\[[^\]]+\]\([^)]*\))')


def inline(s):
    out = []
    pos = 0
    for m in INLINE.finditer(s):
        out.append(esc(s[pos:m.start()]))
        tok = m.group(0)
        if m.group(1):
            out.append('\\fB\\%' + esc(tok[1:-1]).replace('-', '\\-') + '\\fR')
        elif m.group(2):
            out.append('\\fB' + inline(tok[2:-2]).replace('\\fR', '\\fB') + '\\fR')
        elif m.group(3):
            out.append('\\fI' + inline(tok[1:-1]).replace('\\fR', '\\fI') + '\\fR')
        else:
            out.append(inline(tok[1:tok.index('](')]))
        pos = m.end()
    out.append(esc(s[pos:]))
    return ''.join(out)


def textlines(lines):
    """Filled text: one troff line per source line, none starting with . or '."""
    res = []
    for ln in lines:
        t = inline(ln.strip())
        if t.startswith('.') or t.startswith("'"):
            t = '\\&' + t
        if t:
            res.append(t)
    return res


# ------------------------------------------------------------ blocks

def cells(row):
    row = row.strip()
    if not (row.startswith('|') and row.endswith('|')):
        die('table row without outer bars: %s' % row)
    return [c.strip() for c in row[1:-1].split('|')]


def table_rows(lines):
    head = cells(lines[0])
    rows = [cells(r) for r in lines[2:]]
    for r in rows:
        if len(r) != len(head):
            die('table row with %d cells, header has %d: %s' % (len(r), len(head), r))
    return head, rows


def render_table(lines):
    head, rows = table_rows(lines)
    out = []
    for r in rows:
        out.append('.TP')
        out.extend(textlines([r[0]]))
        if len(r) == 2:
            out.extend(textlines([r[1]]))
            continue
        first = True
        for h, c in zip(head[1:], r[1:]):
            if not c:
                continue
            if not first:
                out.append('.br')
            first = False
            out.append('\\fI' + esc(h) + ':\\fR')
            out.extend(textlines([c]))
    return out


def split_blocks(lines):
    """Markdown body -> [(kind, lines)], kind in para, code, table, list."""
    blocks = []
    i = 0
    while i < len(lines):
        ln = lines[i]
        if not ln.strip() or MARK.match(ln):
            i += 1
        elif ln.startswith('```'):
            j = i + 1
            while j < len(lines) and not lines[j].startswith('```'):
                j += 1
            if j == len(lines):
                die('unclosed code block: %s' % ln)
            blocks.append(('code', lines[i + 1:j]))
            i = j + 1
        elif ln.startswith('|'):
            j = i
            while j < len(lines) and lines[j].startswith('|'):
                j += 1
            blocks.append(('table', lines[i:j]))
            i = j
        elif re.match(r'^[*-] ', ln):
            items = []
            while i < len(lines) and (re.match(r'^[*-] ', lines[i]) or
                                      (lines[i].startswith('  ') and items)):
                if re.match(r'^[*-] ', lines[i]):
                    items.append([lines[i][2:]])
                else:
                    items[-1].append(lines[i])
                i += 1
            blocks.append(('list', items))
        else:
            j = i
            while j < len(lines) and lines[j].strip() and not (
                    lines[j].startswith('```') or lines[j].startswith('|') or
                    re.match(r'^[*-] ', lines[j])):
                j += 1
            blocks.append(('para', lines[i:j]))
            i = j
    return blocks


def render_blocks(blocks):
    out = []
    for kind, b in blocks:
        if kind == 'para':
            out.append('.PP')
            out.extend(textlines(b))
        elif kind == 'code':
            out += ['.PP', '.in +4n', '.EX']
            for ln in b:
                t = esc(ln).replace('-', '\\-')
                out.append('\\&' + t if t else '')
            out += ['.EE', '.in']
        elif kind == 'table':
            out.extend(render_table(b))
        elif kind == 'list':
            for item in b:
                out.append('.IP \\(bu 2')
                out.extend(textlines(item))
    return out


# ------------------------------------------------------------ API.md

class Section:
    def __init__(self, level, title):
        self.level, self.title, self.lines = level, title, []
        self.mark = None


def parse_sections(path):
    secs = []
    code = False
    with open(path, encoding='utf-8') as f:
        for ln in f.read().split('\n'):
            if ln.startswith('```'):
                code = not code
            m = None if code else HEAD.match(ln)
            if m:
                secs.append(Section(len(m.group(1)), m.group(2)))
            elif secs:
                mm = MARK.match(ln)
                if mm and secs[-1].mark is None and not any(x.strip() for x in secs[-1].lines):
                    secs[-1].mark = mm.group(1)
                else:
                    secs[-1].lines.append(ln)
    return secs


class Page:
    def __init__(self, names, desc, sec):
        self.names, self.desc, self.start = names, desc, sec
        self.parts = []     # (section, relative heading level or None for the start)


def build_pages(secs):
    pages = {}
    stack = []              # (level, page or None)
    for s in secs:
        while stack and stack[-1][0] >= s.level:
            stack.pop()
        page = stack[-1][1] if stack else None
        if s.mark == 'none':
            page = None
        elif s.mark:
            if s.mark.startswith('+'):
                name = s.mark[1:].strip()
                if name not in pages:
                    die('"+%s" before the page %s starts' % (name, name))
                page = pages[name]
                page.parts.append(s)
            else:
                m = re.match(r'^([\w, ]+?)\s+-\s+(.+)$', s.mark)
                if not m:
                    die('bad marker "%s" (want "NAME[, NAME] - description")' % s.mark)
                names = [n.strip() for n in m.group(1).split(',')]
                if names[0] in pages:
                    die('page %s started twice' % names[0])
                page = Page(names, m.group(2), s)
                pages[names[0]] = page
                page.parts.append(s)
        elif page is not None:
            page.parts.append(s)
        stack.append((s.level, page))
    return pages


def header_decls(path):
    decls = {}
    macros = set()
    with open(path, encoding='utf-8') as f:
        for ln in f:
            m = DECL.match(ln)
            if m:
                decls[m.group(1)] = norm(ln.strip())
            m = re.match(r'^#define\s+(LFPOOL_[A-Z_]+)', ln)
            if m:
                macros.add(m.group(1))
    return decls, macros


def render_page(page, pages, decls, macros, version):
    title = page.names[0]
    own = set(page.names)
    synopsis = []
    returns = []            # (function or None, table lines)
    body = []
    for s in page.parts:
        blocks = split_blocks(s.lines)
        # the first code block of a section naming functions is its synopsis
        names_here = re.findall(r'`(\w+)`', s.title) if s is not page.start else page.names
        fn_section = any(n in decls or n in macros for n in names_here)
        if fn_section:
            for k, (kind, b) in enumerate(blocks):
                if kind == 'code':
                    for ln in b:
                        m = DECL.match(ln.strip())
                        if m and norm(ln.strip()) != decls.get(m.group(1)):
                            die('%s: "%s" is not the declaration in lfpool.h:\n  %s'
                                % (s.title, ln.strip(), decls.get(m.group(1), '(none)')))
                    synopsis.append(b)
                    del blocks[k]
                    break
            for k, (kind, b) in enumerate(blocks):
                if kind == 'table' and cells(b[0])[:2] == ['return', 'meaning']:
                    returns.append((names_here[0], b))
                    del blocks[k]
                    break
        if s is page.start:
            body.append(('.SH', 'DESCRIPTION'))
        elif s.level <= 2:
            body.append(('.SH', s.title.upper()))
        else:
            body.append(('.SS', s.title))
        body.append(render_blocks(blocks))

    fns = [n for n in page.names if n in decls]
    for n in fns:
        if not any(n in ''.join(b) for b in synopsis):
            die('page %s: no prototype of %s in its SYNOPSIS block' % (title, n))
    if fns and not returns and any(not decls[n].startswith('void ') for n in fns):
        die('page %s: no "| return | meaning |" table' % title)

    out = ['.\\" Generated by man/api2man.py from docs/API.md: edit that file.',
           '.TH %s 3 "" "lfpool %s" "Library Functions Manual"' % (title.upper(), version),
           '.SH NAME',
           '%s \\- %s' % (', '.join(page.names), esc(page.desc)),
           '.SH SYNOPSIS', '.nf', '.B #include <lfpool.h>', '.fi']
    for b in synopsis:
        out += ['.PP', '.nf']
        out += ['\\&' + esc(ln).replace('-', '\\-') for ln in b]
        out += ['.fi']
    out += ['.PP', 'Compile and link with',
            '\\fIpkg\\-config \\-\\-cflags \\-\\-libs lfpool\\fR (\\fB\\-llfpool\\fR).']

    tail = []               # .SH sections after DESCRIPTION go after ERRORS
    for item in body:
        if isinstance(item, tuple):
            if item[0] == '.SH' and item[1] != 'DESCRIPTION':
                tail.append('.SH "%s"' % esc(item[1]))
                continue
            if item[0] == '.SS':
                (tail if tail else out).append('.SS "%s"' % inline(item[1]))
                continue
            out.append('.SH DESCRIPTION')
        else:
            (tail if tail else out).extend(item)

    if returns:
        rv, errs = [], []
        for fn, b in returns:
            head, rows = table_rows(b)
            r_ok = [r for r in rows if not ERRNAME.match(r[0])]
            r_err = [r for r in rows if ERRNAME.match(r[0])]
            for dst, rs in ((rv, r_ok), (errs, r_err)):
                if not rs:
                    continue
                if len(returns) > 1:
                    dst += ['.PP', '\\fB%s\\fR():' % fn]
                dst += render_table([b[0], b[1]] + ['| %s |' % ' | '.join(r) for r in rs])
        if rv:
            out += ['.SH "RETURN VALUE"'] + rv
        if errs:
            out += ['.SH ERRORS'] + errs
    elif fns:
        out += ['.SH "RETURN VALUE"', 'None.']
    out += tail

    # SEE ALSO: the overview, and every other page this one mentions
    text = '\n'.join('\n'.join(s.lines) for s in page.parts)
    seen = []
    for other in sorted(pages):
        if other == title:
            continue
        if title == 'lfpool' or other == 'lfpool' or \
                any(re.search(r'\b%s\b' % re.escape(n), text) for n in pages[other].names):
            seen.append(other)
    if seen:
        out.append('.SH "SEE ALSO"')
        out += ['.BR %s (3)%s' % (n, ',' if k < len(seen) - 1 else '')
                for k, n in enumerate(seen)]
    out.append('.PP')
    out.append('The full reference, docs/API.md, is the source of these pages.')
    return '\n'.join(out) + '\n'


def main():
    if len(sys.argv) < 6:
        die('usage: api2man.py API.md lfpool.h VERSION OUTDIR PAGE.3...')
    api, header, version, outdir = sys.argv[1:5]
    expected = set(os.path.basename(p) for p in sys.argv[5:])
    decls, macros = header_decls(header)
    pages = build_pages(parse_sections(api))

    files = {}
    for title, page in pages.items():
        for n in page.names:
            if n not in decls and n not in macros and n != 'lfpool':
                die('page %s names %s, which lfpool.h does not declare' % (title, n))
    documented = {n for p in pages.values() for n in p.names}
    missing = sorted(set(decls) - documented)
    if missing:
        die('functions of lfpool.h without a man page (add a marker in API.md): %s'
            % ', '.join(missing))
    for title, page in pages.items():
        files[title + '.3'] = render_page(page, pages, decls, macros, version)
        for n in page.names[1:]:
            files[n + '.3'] = '.so man3/%s.3\n' % title

    if set(files) != expected:
        die('man/meson.build lists other pages than API.md defines:\n'
            '  add: %s\n  remove: %s' % (' '.join(sorted(set(files) - expected)) or '-',
                                        ' '.join(sorted(expected - set(files))) or '-'))
    for name, text in files.items():
        with open(os.path.join(outdir, name), 'w', encoding='ascii') as f:
            f.write(text)


if __name__ == '__main__':
    main()
