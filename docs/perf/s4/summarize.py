import sys,re,glob,collections
d=sys.argv[1]
rows=collections.defaultdict(list)
for f in sorted(glob.glob(d+'/*.txt')):
    name=f.split('/')[-1][:-4]
    if name in ('load','host'): continue
    kind,build,i=name.rsplit('-',2)
    sect='main'
    for line in open(f):
        if line.startswith('fences'): sect='fences'
        if 'tight' in line.lower() and ':' in line: sect='tight'
        m=re.match(r'^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x',line)
        if m and sect=='main':
            rows[(kind,m.group(2)+':'+m.group(3)+':'+m.group(4),m.group(1),build)].append(float(m.group(5)))
for k in sorted(rows):
    print('%-6s %-8s %-14s %-5s %s'%(k[0],k[1],k[2],k[3],' '.join('%6.1f'%v for v in rows[k])))
