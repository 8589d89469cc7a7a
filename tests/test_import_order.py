"""Imports point up the pipeline (nbs/index.ipynb): no stage imports a later one, nothing imports by name string."""
import ast, pathlib
STAGES = ['core', 'degrade', 'data', 'models', 'metrics', 'landmarks', 'losses', 'eval', 'train', 'run', 'experiment', 'cli', 'writeup', 'upscale_io', 'upscale_models', 'upscale']
root = pathlib.Path(__file__).resolve().parent.parent/'tisr'
def module_name(f) -> str: return '.'.join(('tisr',) + f.relative_to(root).with_suffix('').parts).removesuffix('.__init__')
def absolute(node, here:str) -> str:
    "The absolute module of a `from ... import` (nbdev writes relative imports into the package)."
    if node.level == 0: return node.module or ''
    return '.'.join(here.split('.')[:-node.level] + ([node.module] if node.module else []))
stage = lambda mod: mod.split('.')[1] if mod.count('.') else mod


def test_imports_point_up_the_pipeline():
    bad, n = [], 0
    for f in sorted(root.rglob('*.py')):
        if f.name == '_modidx.py': continue
        n += 1
        here = module_name(f) if f.name != '__init__.py' else module_name(f) + '.__init__'
        src = f.read_text()
        assert 'import_module' not in src and '__import__' not in src, f
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.ImportFrom):
                mod = absolute(node, here)
                if mod.startswith('tisr.') and STAGES.index(stage(mod)) > STAGES.index(stage(here)): bad.append((here, mod))
    assert not bad, bad
    test_stage = absolute(ast.parse('from ..run import x').body[0], 'tisr.data.paired')
    assert test_stage == 'tisr.run' and STAGES.index(stage(test_stage)) > STAGES.index('data')   # what a violation looks like
    print(f"{n} modules, every import points up the pipeline")
