"""tisr-upscale (tisr.upscale, tisr.upscale_io, tisr.upscale_models): tiles, units, inputs and outputs, models,
ONNX, the record, the command lines, and a papermill smoke run of nbs/upscale.ipynb. Fixtures are written into
tmp_path; tests on the shared real data and official weights skip, with the reason, unless TISR_DATA (the folder
that holds thermal/) and TISR_WEIGHTS are set; CUDA tests are marked `cuda`.

    OMP_NUM_THREADS=1 TISR_DATA=/work/shared/data TISR_WEIGHTS=/work/shared/weights python -m pytest -q tests/test_upscale.py"""
import copy, json, os, subprocess, sys, tempfile
from pathlib import Path
import cv2
import numpy as np
import pytest
import torch
import tisr.upscale as U
from tisr.models import build_model, model_spec
from conftest import ROOT, run_notebook

torch.set_num_threads(1)
DATA = Path(os.environ['TISR_DATA']) if os.environ.get('TISR_DATA') else None
needs_data = pytest.mark.skipif(DATA is None or not (DATA/'thermal').is_dir(), reason='TISR_DATA (the folder holding thermal/) is not set')
needs_weights = pytest.mark.skipif(not os.environ.get('TISR_WEIGHTS'), reason='TISR_WEIGHTS (official weights folder) is not set')
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU (on one: pytest -m cuda tests/test_upscale.py)')
ROADSCENE = 'thermal/roadscene/infrared/FLIR_00006.png'

# ---------------------------------------------------------------------------------------------------------------
# fixtures

def smooth_field(h, w, seed=0) -> np.ndarray:
    "A smooth random field in [0, 1] (thermal scenes are mostly smooth), deterministic."
    small = np.random.default_rng(seed).random((h // 8 + 2, w // 8 + 2))
    return np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)

def write_png(path, a) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), a)
    return path

def grey8(path, h=40, w=48, seed=0) -> Path: return write_png(path, np.round(smooth_field(h, w, seed) * 255).astype(np.uint8))

def grey_video(path, frames=3, h=32, w=40) -> Path:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'FFV1'), 10, (w, h), True)
    assert vw.isOpened()
    for i in range(frames): vw.write(cv2.cvtColor(np.round(smooth_field(h, w, i) * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR))
    vw.release()
    return Path(path)

@pytest.fixture(scope='module')
def tiny():
    "A small random CFSR (no weights needed): real convolutions and a receptive field, fast on a CPU."
    torch.manual_seed(0)
    return U.LoadedModel(build_model('cfsr', 4, pretrained=False, embed_dim=16, depths=(1, 1)), 'cfsr', 4, 'test')

def run(src, out, model='bicubic', **kw):
    kw.setdefault('progress', False)
    return U.upscale(src, out, model, **kw)

def record(out) -> dict: return json.loads((Path(out)/U.RECORD_NAME).read_text().splitlines()[-1])

# ---------------------------------------------------------------------------------------------------------------
# tiles

@pytest.mark.parametrize('n,t,o', [(100, 40, 8), (640, 264, 40), (512, 88, 40), (64, 64, 8), (50, 80, 16), (129, 64, 0)])
def test_tile_starts_cover_frame_with_overlap(n, t, o):
    t = U.fitted_tile(n, t, o)
    starts = U.plan_starts(n, t, o)
    assert starts[0] == 0 and starts[-1] + t == n
    assert all(b - a <= t - o for a, b in zip(starts, starts[1:]))   # neighbours share at least `o` pixels

def test_fitted_tile_computes_no_more_than_needed():
    # 640 wide in tiles of at most 400 with overlap 40 needs 2 tiles; each need only be 340 wide
    assert U.fitted_tile(640, 400, 40) == 340
    assert U.tile_count(640, 340, 40) == 2

@pytest.mark.parametrize('n,t,o,s', [(100, 40, 8, 4), (184, 88, 40, 4), (97, 50, 20, 3)])
def test_axis_weights_sum_to_one(n, t, o, s):
    starts = U.plan_starts(n, t, o)
    total = np.zeros(n * s)
    for st, w in zip(starts, U.axis_weights(starts, t, n, s)): total[st * s:(st + t) * s] += w
    np.testing.assert_allclose(total, 1, atol=1e-6)

def test_tiled_matches_whole_for_a_local_model():
    "bicubic reads 2 LR pixels around each output pixel: tiles whose ramps skip 4 of them reproduce the whole frame."
    x = smooth_field(70, 90).astype(np.float32)
    whole = U.make_engine('bicubic', progress=False)(x)
    eng = U.make_engine('bicubic', tile=40, overlap=16, batch=3, progress=False)
    assert eng.plan(70, 90).count > 4
    np.testing.assert_allclose(eng(x), whole, atol=1e-6)

def test_memory_budget_chooses_tiles_and_refuses_too_small(tiny):
    x = smooth_field(120, 160).astype(np.float32)
    eng = U.make_engine(tiny, overlap=8, max_memory=4096, progress=False)
    assert eng.plan(120, 160).whole   # fits: one forward of the whole frame
    # force tiles: pretend a forward costs 100 kB per LR pixel
    eng = U.Engine(eng.net, 4, torch.device('cpu'), U.UpscaleOptions(overlap=8, max_memory=800, progress=False), bytes_per_px=1e5)
    p = eng.plan(120, 160)
    assert not p.whole and p.tile_h * p.tile_w * 1e5 * p.batch <= 800 * 2**20
    assert eng(x).shape == (480, 640)
    with pytest.raises(U.MemoryBudgetError, match='max_memory'):
        U.Engine(eng.net, 4, torch.device('cpu'), U.UpscaleOptions(overlap=8, max_memory=5), bytes_per_px=1e5).plan(120, 160)

# ---------------------------------------------------------------------------------------------------------------
# units and bit depth

def test_8bit_in_8bit_out(tmp_path):
    grey8(tmp_path/'in'/'a.png')
    s = run(tmp_path/'in', tmp_path/'out')
    y = cv2.imread(str(tmp_path/'out'/'a.png'), cv2.IMREAD_UNCHANGED)
    assert len(s.done) == 1 and y.dtype == np.uint8 and y.shape == (160, 192)

def test_16bit_constant_30000_comes_back_30000(tmp_path):
    write_png(tmp_path/'in'/'c.png', np.full((40, 48), 30000, np.uint16))
    run(tmp_path/'in', tmp_path/'out')
    y = cv2.imread(str(tmp_path/'out'/'c.png'), cv2.IMREAD_UNCHANGED)
    assert y.dtype == np.uint16 and y.shape == (160, 192)
    assert np.abs(y.astype(int) - 30000).max() <= 1

def test_16bit_user_range_is_one_fixed_map(tmp_path):
    a = np.full((40, 48), 30000, np.uint16)
    a[:, 24:] = 31000   # no per-image stretch: both levels must come back as counts
    write_png(tmp_path/'in'/'c.png', a)
    run(tmp_path/'in', tmp_path/'out', value_range=(20000, 40000))
    y = cv2.imread(str(tmp_path/'out'/'c.png'), cv2.IMREAD_UNCHANGED).astype(int)
    assert np.abs(y[:, :80] - 30000).max() <= 1 and np.abs(y[:, 112:] - 31000).max() <= 1
    assert record(tmp_path/'out')['norms']['uint16'] == {'kind': 'uint16', 'lo': 20000.0, 'hi': 40000.0}

def test_16bit_outside_user_range_fails_naming_file_and_range(tmp_path):
    write_png(tmp_path/'in'/'c.png', np.full((40, 48), 50000, np.uint16))
    s = run(tmp_path/'in', tmp_path/'out', value_range=(0, 40000))
    assert len(s.failed) == 1 and s.exit_code == 1
    assert 'c.png' in s.failed[0][1] and '0..40000' in s.failed[0][1]

def test_degC_mean_preserved_through_bicubic(tmp_path):
    t = (20 + 15 * smooth_field(60, 80)).astype(np.float32)
    (tmp_path/'in').mkdir()
    np.save(tmp_path/'in'/'t.npy', t)
    run(tmp_path/'in', tmp_path/'out')
    y = np.load(tmp_path/'out'/'t.npy')
    assert y.dtype == np.float32 and y.shape == (240, 320)
    assert abs(float(y.mean()) - float(t.mean())) < 0.05

def test_degC_outside_default_range_or_non_finite_is_an_error_naming_the_file(tmp_path):
    p = tmp_path/'hot.npy'
    np.save(p, np.full((20, 20), 300.0, np.float32))
    with pytest.raises(U.OutOfRange, match=r'hot\.npy.*-40\.\.160'): U.read_frame(p)
    np.save(p, np.full((20, 20), np.nan, np.float32))
    with pytest.raises(U.ImageReadError, match=r'hot\.npy.*non-finite'): U.read_frame(p)   # tisr.core.read_raw refuses it

def test_colour_palette_refused_unless_luminance(tmp_path):
    rgb = np.zeros((40, 48, 3), np.uint8)
    rgb[..., 0] = 200
    rgb[..., 2] = np.arange(48)[None] * 5   # an 'iron'-like palette: channels differ
    write_png(tmp_path/'in'/'pal.png', rgb)
    s = run(tmp_path/'in', tmp_path/'out')
    assert len(s.skipped) == 1 and 'palette' in s.skipped[0][1] and 'pal.png' in s.skipped[0][1]
    s = run(tmp_path/'in', tmp_path/'out2', palette='luminance')
    assert len(s.done) == 1 and cv2.imread(str(tmp_path/'out2'/'pal.png'), cv2.IMREAD_UNCHANGED).ndim == 2

def test_grey_stored_as_three_equal_channels_is_accepted(tmp_path):
    g = np.round(smooth_field(40, 48) * 255).astype(np.uint8)
    write_png(tmp_path/'in'/'g.png', cv2.cvtColor(g, cv2.COLOR_GRAY2BGR))
    assert len(run(tmp_path/'in', tmp_path/'out').done) == 1

# ---------------------------------------------------------------------------------------------------------------
# inputs, outputs, resume

def test_folder_glob_and_file_inputs_mirror_the_tree(tmp_path):
    grey8(tmp_path/'in'/'a.png')
    grey8(tmp_path/'in'/'sub'/'deep'/'b.png', seed=1)
    run(tmp_path/'in', tmp_path/'o1')
    assert (tmp_path/'o1'/'a.png').is_file() and (tmp_path/'o1'/'sub'/'deep'/'b.png').is_file()
    run(str(tmp_path/'in'/'**'/'b.png'), tmp_path/'o2')
    assert (tmp_path/'o2'/'sub'/'deep'/'b.png').is_file() and not (tmp_path/'o2'/'a.png').exists()
    run(tmp_path/'in'/'a.png', tmp_path/'o3')
    assert (tmp_path/'o3'/'a.png').is_file()

def test_jpeg_input_written_as_png(tmp_path):
    (tmp_path/'in').mkdir()
    cv2.imwrite(str(tmp_path/'in'/'j.jpg'), np.round(smooth_field(40, 48) * 255).astype(np.uint8))
    run(tmp_path/'in', tmp_path/'out')
    assert (tmp_path/'out'/'j.png').is_file()

def test_never_overwrites_unless_asked_and_resumes(tmp_path):
    grey8(tmp_path/'in'/'a.png')
    grey8(tmp_path/'in'/'b.png', seed=1)
    run(tmp_path/'in', tmp_path/'out')
    with pytest.raises(FileExistsError, match='overwrite'): run(tmp_path/'in', tmp_path/'out')
    (tmp_path/'out'/'b.png').unlink()   # an interrupted job: one output missing
    s = run(tmp_path/'in', tmp_path/'out', skip_existing=True)
    assert len(s.done) == 1 and len(s.skipped) == 1 and 'exists' in s.skipped[0][1]
    assert len(run(tmp_path/'in', tmp_path/'out', overwrite=True).done) == 2
    with pytest.raises(U.UpscaleError, match='contradict'): run(tmp_path/'in', tmp_path/'out', overwrite=True, skip_existing=True)

def test_bad_files_named_and_skipped_with_summary(tmp_path):
    grey8(tmp_path/'in'/'ok.png')
    data = grey8(tmp_path/'x.png').read_bytes()
    (tmp_path/'in'/'cut.png').write_bytes(data[:len(data) // 2])
    (tmp_path/'in'/'notes.txt').write_text('not an image')
    write_png(tmp_path/'in'/'tiny.png', np.zeros((4, 4), np.uint8))
    s = run(tmp_path/'in', tmp_path/'out')
    reasons = {Path(p).name: why for p, why in s.skipped}
    assert len(s.done) == 1 and set(reasons) == {'cut.png', 'notes.txt', 'tiny.png'}
    assert 'truncated' in reasons['cut.png'] and 'unsupported' in reasons['notes.txt'] and 'smaller' in reasons['tiny.png']
    assert s.exit_code == 0 and 'done 1, skipped 3, failed 0' in str(s) and 'MP/s' in str(s)

def test_output_inside_input_refused_before_any_work(tmp_path):
    grey8(tmp_path/'in'/'a.png')
    with pytest.raises(U.UpscaleError, match='inside the input'): run(tmp_path/'in', tmp_path/'in'/'out')
    with pytest.raises(U.UpscaleError, match='inside the input'): run(str(tmp_path/'in'/'**'/'*.png'), tmp_path/'in'/'out')
    assert not (tmp_path/'in'/'out').exists()
    assert len(run(str(tmp_path/'in'/'*.png'), tmp_path/'in'/'sr').done) == 1   # a flat glob never reads in/sr back

def test_read_only_output_refused_before_any_work(tmp_path, monkeypatch):
    grey8(tmp_path/'in'/'a.png')
    out = tmp_path/'ro'
    out.mkdir()
    out.chmod(0o555)
    if os.geteuid() == 0:   # root writes through mode bits: make the write probe fail as the kernel would for others
        def denied(*a, **k): raise PermissionError(13, 'Permission denied')
        monkeypatch.setattr(tempfile, 'mkstemp', denied)
    with pytest.raises(U.OutputNotWritable, match='not writable'): run(tmp_path/'in', out)
    assert not list(out.iterdir())
    out.chmod(0o755)

def test_writes_are_atomic(tmp_path, monkeypatch):
    grey8(tmp_path/'in'/'a.png')
    def broken(path, a):   # a write that fails half-way
        Path(path).write_bytes(b'half')
        return False
    monkeypatch.setattr(cv2, 'imwrite', broken)
    s = run(tmp_path/'in', tmp_path/'out')
    assert len(s.failed) == 1 and not (tmp_path/'out'/'a.png').exists()
    assert not [p for p in (tmp_path/'out').iterdir() if '.tmp-' in p.name]

def test_video_to_frames_and_to_video(tmp_path):
    grey_video(tmp_path/'in'/'clip.avi')
    s = run(tmp_path/'in', tmp_path/'f')
    frames = sorted((tmp_path/'f'/'clip').glob('frame_*.png'))
    assert len(s.done) == 1 and len(frames) == 3
    assert cv2.imread(str(frames[0]), cv2.IMREAD_UNCHANGED).shape == (128, 160)
    run(tmp_path/'in', tmp_path/'v', video_out='video')
    cap = cv2.VideoCapture(str(tmp_path/'v'/'clip.mkv'))
    got = []
    ok, f = cap.read()
    while ok:
        got.append(f)
        ok, f = cap.read()
    assert len(got) == 3 and got[0].shape[:2] == (128, 160)
    # FFV1 is lossless: the written 8-bit frame comes back exactly
    np.testing.assert_array_equal(got[0][..., 0], cv2.imread(str(frames[0]), cv2.IMREAD_UNCHANGED))

# ---------------------------------------------------------------------------------------------------------------
# models

def test_scale_checked_against_model():
    with pytest.raises(U.UpscaleError, match='valid scales: 2, 3, 4, 8, 16'): U.load_model('cfsr', 5)

def make_run(tmp_path, names, **cfg) -> Path:
    "A run folder as tisr.run.finetune writes it (config.json, checkpoints/{'model': state dict}), untrained CFSR."
    run_dir = tmp_path/'run'
    (run_dir/'checkpoints').mkdir(parents=True)
    (run_dir/'config.json').write_text(json.dumps(cfg or dict(model='cfsr', scale=4, channels=1, adapter='fold', recipe={})))
    for i, name in enumerate(names):
        torch.manual_seed(i)
        torch.save({'model': build_model('cfsr', 4, pretrained=False).state_dict(), 'step': i}, run_dir/'checkpoints'/name)
    return run_dir

def test_run_folder_loads_the_weights_it_tested(tmp_path):
    "best.pt when the recipe kept the best evaluation, else the EMA copy, else the last weights (tisr.run.tested_weights)."
    run_dir = make_run(tmp_path, ['model.pt', 'best.pt', 'model_ema.pt'], model='cfsr', scale=4, recipe={'select': 'best', 'ema': 0.999})
    lm = U.load_model(run_dir)
    assert lm.weights.name == 'best.pt' and lm.scale == 4 and len(lm.sha256) == 64
    (run_dir/'checkpoints'/'best.pt').unlink()
    assert U.load_model(run_dir).weights.name == 'model_ema.pt'
    assert U.load_model(make_run(tmp_path/'v1', ['model.pt', 'best.pt'], model='cfsr', scale=4, recipe={})).weights.name == 'model.pt'
    with pytest.raises(U.UpscaleError, match='x4, not x2'): U.load_model(run_dir, 2)

def test_older_run_config_without_channels_and_adapter(tmp_path):
    "Runs made before channels/adapter were recorded have model and scale only; they still load (1 channel, fold)."
    committed = json.loads((ROOT/'outputs'/'finetune'/'v1-real'/'config.json').read_text())
    # an older run's config: today's committed one without the keys that were added later
    old = {k: v for k, v in committed.items() if k not in ('channels', 'adapter')}
    # the defaults an older config gets are what runs record today
    assert (committed['channels'], committed['adapter']) == (1, 'fold')
    # committed run folders hold no checkpoints
    with pytest.raises(U.RunWeightsMissing, match='none of the weights it tested'): U.load_model(ROOT/'outputs'/'finetune'/'v1-real')
    lm = U.load_model(make_run(tmp_path/'old', ['model.pt'], **old))
    assert (lm.name, lm.scale, lm.weights.name) == ('cfsr', 4, 'model.pt')
    # same checkpoint with today's full config: the older config builds the same network
    lm_today = U.load_model(make_run(tmp_path/'today', ['model.pt'], **committed))
    x = torch.rand(1, 1, 16, 16)
    with torch.inference_mode(): assert torch.equal(lm.model(x), lm_today.model(x))

def test_run_with_model_kw_is_built_as_the_finetune_built_it(tmp_path, tiny):
    run_dir = make_run(tmp_path, [], model='cfsr', scale=4, channels=1, adapter='fold', recipe={'model_kw': {'embed_dim': 16, 'depths': [1, 1]}})
    torch.save({'model': tiny.model.state_dict()}, run_dir/'checkpoints'/'model.pt')
    lm = U.load_model(run_dir)
    x = torch.rand(1, 1, 16, 16)
    with torch.inference_mode(): assert torch.equal(lm.model(x), tiny.model(x))

def test_run_folder_without_weights_is_a_clear_error(tmp_path):
    with pytest.raises(U.RunWeightsMissing, match='none of the weights it tested'): U.load_model(make_run(tmp_path, []))

def test_checkpoint_file_needs_arch_unless_in_a_run(tmp_path):
    run_dir = make_run(tmp_path, ['best.pt'])
    ck = run_dir/'checkpoints'/'best.pt'
    assert U.load_model(ck).name == 'cfsr'   # arch and scale from ../config.json
    loose = tmp_path/'loose.pt'
    loose.write_bytes(ck.read_bytes())
    with pytest.raises(U.UpscaleError, match='arch'): U.load_model(loose)
    lm = U.load_model(loose, arch='cfsr')
    sd = torch.load(ck, weights_only=True)['model']
    assert torch.equal(lm.model.state_dict()['net.conv_first.conv.weight'], sd['net.conv_first.conv.weight'])

def test_official_rgb_layout_checkpoint_is_folded_to_grey(tmp_path):
    p = tmp_path/'official.pth'
    torch.save({'params': model_spec('cfsr').builder(4, 3).state_dict()}, p)
    lm = U.load_model(p, arch='cfsr')
    assert lm.model.channels == 1 and lm.model(torch.rand(1, 1, 8, 8)).shape == (1, 1, 32, 32)

class Payload:
    "An arbitrary object: a weights_only load must refuse to unpickle it."
    def __reduce__(self): return (print, ('code ran',))

def test_checkpoints_load_weights_only(tmp_path, capsys):
    p = tmp_path/'evil.pt'
    torch.save({'model': {}, 'x': Payload()}, p)
    with pytest.raises(RuntimeError, match=r'evil\.pt.*weights_only=True'): U.load_model(p, arch='cfsr')
    grey8(tmp_path/'in'/'a.png')
    assert U.main([str(tmp_path/'in'), '-o', str(tmp_path/'out'), '--model', str(p), '--arch', 'cfsr']) == 2
    assert 'code ran' not in capsys.readouterr().out

def test_tta_runs_the_self_ensemble(tmp_path, tiny):
    grey8(tmp_path/'in'/'a.png')
    assert len(run(tmp_path/'in', tmp_path/'out', model=tiny, tta=True).done) == 1
    assert record(tmp_path/'out')['tta'] is True

def test_half_needs_cuda(tiny):
    if torch.cuda.is_available(): pytest.skip('CUDA present: half is allowed here')
    with pytest.raises(U.UpscaleError, match='needs device cuda'): U.make_engine(tiny, half=True)
    with pytest.raises(ValueError, match="device 'cuda' asked for .* CUDA is not available"): U.make_engine(tiny, device='cuda')

def test_channels_last_same_values(tiny):
    x = smooth_field(40, 48).astype(np.float32)
    a = U.make_engine(tiny, progress=False)(x)
    b = U.make_engine(tiny, channels_last=True, progress=False)(x)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert tiny.model.memory_format == torch.contiguous_format   # the caller's model is left as it was

def test_unknown_option_lists_the_valid_ones(tmp_path):
    grey8(tmp_path/'in'/'a.png')
    with pytest.raises(ValueError, match=r"\['tiles'\]; valid: scale, arch, tile"): run(tmp_path/'in', tmp_path/'out', tiles=64)
    assert not (tmp_path/'out').exists()

# ---------------------------------------------------------------------------------------------------------------
# ONNX

def test_onnx_export_dynamic_shapes_and_match(tmp_path, tiny):
    pytest.importorskip('onnxruntime')
    onnx = pytest.importorskip('onnx')
    p = U.export_onnx(tiny, tmp_path/'m.onnx')
    proto = onnx.load(str(p))
    assert proto.opset_import[0].version == 17
    assert {m.key: m.value for m in proto.metadata_props}['tisr_scale'] == '4'
    r = U.OrtRunner(p, 1)
    for shape in ((1, 1, 24, 40), (3, 1, 37, 29)):   # other sizes and batches than the export's probe
        x = torch.rand(*shape)
        with torch.inference_mode(): ref = tiny.model(x)
        assert r(x).shape == ref.shape and float((r(x) - ref).abs().max()) <= 1e-4

def test_onnxruntime_backend_matches_torch(tmp_path, tiny):
    pytest.importorskip('onnxruntime')
    grey8(tmp_path/'in'/'a.png', 60, 72)
    for out, kw in (('t', {}), ('o', dict(backend='onnxruntime', max_memory=4096))):
        summary = run(tmp_path/'in', tmp_path/out, model=tiny, tile=40, overlap=8, **kw)
        assert len(summary.done) == 1, (out, summary.failed, summary.skipped)   # the reason, not a missing file later
    a, b = (cv2.imread(str(tmp_path/d/'a.png'), cv2.IMREAD_UNCHANGED).astype(int) for d in ('t', 'o'))
    assert np.abs(a - b).max() <= 1
    assert record(tmp_path/'o')['backend'] == 'onnxruntime'

def test_missing_onnxruntime_says_how_to_install(tmp_path, tiny, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)   # as if not installed
    monkeypatch.setitem(sys.modules, 'onnx', None)
    with pytest.raises(U.UpscaleError, match='pip install onnx onnxruntime'): U.make_engine(tiny, backend='onnxruntime')
    assert U.export_main(['--model', 'bicubic', '-o', str(tmp_path/'m.onnx')]) == 2
    assert 'pip install onnx onnxruntime' in capsys.readouterr().err

# ---------------------------------------------------------------------------------------------------------------
# record and command lines

def test_record_is_one_json_line(tmp_path):
    grey8(tmp_path/'in'/'a.png')
    run(tmp_path/'in', tmp_path/'out', tile=24, overlap=4)
    lines = (tmp_path/'out'/U.RECORD_NAME).read_text().splitlines()
    rec = json.loads(lines[0])
    assert len(lines) == 1
    for k in ('model', 'scale', 'weights', 'sha256', 'norms', 'tile', 'overlap', 'device', 'backend', 'tta', 'summary', 'git_commit'):
        assert k in rec
    assert rec['tile'] == 24 and rec['overlap'] == 4 and rec['status'] == 'finished'
    assert rec['tiles_used'] == {'40x48': [22, 19, 6, 4]}   # tiles of at most 24, shrunk to the fewest pixels

def test_cli_exit_codes(tmp_path, capsys):
    grey8(tmp_path/'in'/'a.png')
    assert U.main([str(tmp_path/'in'), '-o', str(tmp_path/'out'), '--model', 'bicubic', '--no-progress']) == 0
    assert 'done 1' in capsys.readouterr().out
    np.save(tmp_path/'in'/'hot.npy', np.full((20, 20), 500.0, np.float32))
    assert U.main([str(tmp_path/'in'), '-o', str(tmp_path/'out2'), '--model', 'bicubic', '--no-progress']) == 1
    assert 'FAILED' in capsys.readouterr().err
    assert U.main([str(tmp_path/'in'), '-o', str(tmp_path/'out3'), '--model', 'cfsr', '--scale', '5', '--no-progress']) == 2
    assert 'valid scales' in capsys.readouterr().err
    assert U.main([str(tmp_path/'in'), '-o', str(tmp_path/'out4'), '--model', 'bicubic', '--range=-50,600', '--no-progress']) == 0
    (tmp_path/'bad.pt').write_bytes(b'not a checkpoint')
    assert U.main([str(tmp_path/'in'), '-o', str(tmp_path/'out5'), '--model', str(tmp_path/'bad.pt'), '--arch', 'cfsr', '--no-progress']) == 2
    assert 'bad.pt' in capsys.readouterr().err and not (tmp_path/'out5').exists()

def test_python_dash_m_runs_the_command_line(tmp_path):
    grey8(tmp_path/'in'/'a.png')
    r = subprocess.run([sys.executable, '-m', 'tisr.upscale', str(tmp_path/'in'), '-o', str(tmp_path/'out'), '--model', 'bicubic',
                        '--no-progress'], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert 'tisr-upscale: done 1' in r.stdout and (tmp_path/'out'/'a.png').is_file()

def test_export_cli(tmp_path, capsys):
    pytest.importorskip('onnxruntime')
    run_dir = make_run(tmp_path, ['model.pt'])
    img = grey8(tmp_path/'check.png', 32, 40)
    assert U.export_main(['--model', str(run_dir), '-o', str(tmp_path/'m.onnx'), '--check', str(img)]) == 0
    assert 'max |onnx - torch|' in capsys.readouterr().out

# ---------------------------------------------------------------------------------------------------------------
# the experiment notebook

def test_notebook_smoke_writes_outputs_panel_and_config(tmp_path):
    run_notebook('upscale.ipynb', tmp_path, run='smoke', real_frames=False, tile=128, overlap=8)
    d = tmp_path/'outputs'/'upscale'/'smoke'
    outs = sorted((d/'sr').glob('*.png'))
    assert len(outs) == 8 and cv2.imread(str(outs[0]), cv2.IMREAD_UNCHANGED).shape == (1024, 1280)
    assert (d/'panel.png').stat().st_size > 10_000
    cfg = json.loads((d/'config.json').read_text())
    assert cfg['model'] == 'bicubic' and cfg['tile'] == 128 and cfg['summary']['done'] == 8 and cfg['git_commit']
    assert record(d/'sr')['tiles_used'] == {'256x320': [91, 112, 9, 4]}   # 3x3 tiles shrunk to the fewest pixels

def test_notebook_refuses_unknown_parameters_before_writing(tmp_path):
    papermill = pytest.importorskip('papermill')
    with pytest.raises(papermill.PapermillExecutionError, match=r"unknown run parameter\(s\) \['modle'\]; valid:"):
        run_notebook('upscale.ipynb', tmp_path, run='bad', modle='cfsr')
    assert not (tmp_path/'outputs').exists()

@needs_data
@needs_weights
def test_notebook_real_frames(tmp_path):
    "RoadScene and a radiometric 16-bit frame through the notebook (span: the fast x4 model), panels saved as PNG."
    nb = run_notebook('upscale.ipynb', tmp_path, run='real', real_frames=True, real_model='span')
    d = tmp_path/'outputs'/'upscale'/'real'
    for f in ('panel.png', 'roadscene.png', 'radiometric.png'): assert (d/f).stat().st_size > 10_000, f
    assert cv2.imread(str(d/'roadscene'/'FLIR_00006.png'), cv2.IMREAD_UNCHANGED).shape == (2048, 2560)
    text = nb.read_text()
    assert 'mean difference, output - input' in text and 'counts' in text

# ---------------------------------------------------------------------------------------------------------------
# real data and official weights

@needs_data
@needs_weights
def test_seams_within_one_level_cfsr_real_frame():
    "cfsr x4 on a RoadScene crop: 3x3 tiles sharing exactly 40 LR pixels vs the whole crop, <= 1 level in 8 bits."
    x, _ = U.read_frame(DATA/ROADSCENE)
    crop = x[160:344, 220:404]
    lm = U.load_model('cfsr', 4)
    whole = U.make_engine(lm, progress=False)(crop)
    eng = U.make_engine(lm, tile=88, overlap=40, progress=False)
    tiled = eng(crop)
    p = eng.plans[(184, 184, 1)]
    assert p.count == 9 and p.ys[1] - p.ys[0] == 48
    q = lambda a: np.rint(np.clip(a, 0, 1) * 255)
    assert np.abs(q(tiled) - q(whole)).max() <= 1

@needs_data
@needs_weights
def test_640x512_x4_stays_under_budget():
    "Peak resident memory the call adds (fresh process: VmHWM after reset - VmRSS before) stays under max_memory."
    if not Path('/proc/self/clear_refs').exists(): pytest.skip('needs Linux /proc/self/clear_refs to read the peak')
    budget = 160
    out = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'upscale_speed.py'), 'peak', '--model', 'span', '--max-memory', str(budget)],
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r['out_shape'] == [2048, 2560] and r['tiles'] > 1
    assert r['peak_mb'] < budget, r

@needs_data
def test_real_16bit_and_degC_frames_keep_units(tmp_path):
    raw = DATA/'thermal'/'radiometric_flir'/'raw_u16_png'/'wikimedia_02_IRWaterCooler_centikelvin.png'
    deg = DATA/'thermal'/'radiometric_flir'/'celsius_npy'/'wikimedia_02_IRWaterCooler.npy'
    (tmp_path/'in').mkdir()
    for p in (raw, deg): (tmp_path/'in'/p.name).write_bytes(p.read_bytes())
    assert len(run(tmp_path/'in', tmp_path/'out').done) == 2
    a, y = cv2.imread(str(raw), cv2.IMREAD_UNCHANGED), cv2.imread(str(tmp_path/'out'/raw.name), cv2.IMREAD_UNCHANGED)
    assert y.dtype == np.uint16 and abs(float(y.mean()) - float(a.mean())) < 2   # counts compare to counts
    assert abs(float(np.load(tmp_path/'out'/deg.name).mean()) - float(np.load(deg).mean())) < 0.05

@needs_data
@needs_weights
def test_onnx_matches_torch_on_real_frame(tmp_path):
    pytest.importorskip('onnxruntime')
    x, _ = U.read_frame(DATA/ROADSCENE)
    lm = U.load_model('cfsr', 4)
    assert U.onnx_max_diff(lm, U.export_onnx(lm, tmp_path/'cfsr.onnx'), x[128:256, 160:320], threads=1) <= 1e-4

# ---------------------------------------------------------------------------------------------------------------
# CUDA (marked `cuda`; run on a GPU with: pytest -m cuda tests/test_upscale.py)

@pytest.mark.parametrize('half', [False, True])
@pytest.mark.cuda
@needs_cuda
def test_cuda_matches_cpu_within_one_level(tiny, half):
    x = smooth_field(96, 120).astype(np.float32)
    q = lambda a: np.rint(np.clip(a, 0, 1) * 255)
    ref = U.make_engine(tiny, progress=False)(x)
    got = U.make_engine(copy.deepcopy(tiny), device='cuda', half=half, tile=64, overlap=16, progress=False)(x)
    assert np.abs(q(got) - q(ref)).max() <= 1
    assert next(tiny.model.parameters()).device.type == 'cpu'   # the caller's model stays on the CPU

@pytest.mark.cuda
@needs_cuda
def test_cuda_budget_bounds_gpu_memory(tiny):
    "On CUDA max_memory bounds the GPU memory the tiles take (the accumulator stays on the host)."
    x = smooth_field(512, 640).astype(np.float32)
    eng = U.make_engine(tiny, device='cuda', max_memory=64, progress=False)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    y = eng(x)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    assert y.shape == (2048, 2560) and not eng.plan(512, 640).whole
    assert peak < 64, (peak, eng.plan(512, 640))
