"Integration tests of tisr.models.hub: search order, sha256 checks, offline download path, error messages."
import pytest

import tisr.models.hub as hub
from tisr.core import env_dir, sha256_file


@pytest.fixture
def env(tmp_path, monkeypatch):
    "Empty cache and no TISR_WEIGHTS; returns a tiny file and a registered WeightFile for it (URL file://)."
    monkeypatch.setenv('TISR_CACHE', str(tmp_path/'cache'))
    monkeypatch.delenv('TISR_WEIGHTS', raising=False)
    src = tmp_path/'src'/'tiny.pth'
    src.parent.mkdir(); src.write_bytes(b'tiny weights')
    wf = hub.WeightFile('tiny_x2', 'tiny_x2.pth', src.as_uri(), sha256_file(src), 'sr')
    monkeypatch.setitem(hub.WEIGHTS, wf.name, wf)
    return tmp_path, wf


def test_download_to_cache_then_reuse(env, monkeypatch):
    tmp_path, wf = env
    p = hub.get_weights(wf.name)
    assert p == tmp_path/'cache'/'weights'/'sr'/'tiny_x2.pth' and p.read_bytes() == b'tiny weights'
    assert [f.name for f in p.parent.iterdir()] == ['tiny_x2.pth']   # no temp file left
    def no_network(*a, **k): raise AssertionError('must not download again')
    monkeypatch.setattr(hub, 'download_file', no_network)
    assert hub.get_weights(wf.name) == p


def test_download_with_wrong_hash_leaves_nothing(env, monkeypatch):
    tmp_path, wf = env
    monkeypatch.setitem(hub.WEIGHTS, wf.name, hub.WeightFile(wf.name, wf.filename, wf.url, 'f' * 64, 'sr'))
    with pytest.raises(hub.ChecksumError, match=f"{wf.sha256}, expected {'f' * 64}"): hub.get_weights(wf.name)
    assert not (tmp_path/'cache'/'weights'/'sr'/'tiny_x2.pth').exists()
    assert list((tmp_path/'cache'/'weights'/'sr').iterdir()) == []


def test_offline_error_says_where_to_put_the_file(env, monkeypatch):
    tmp_path, wf = env
    def offline(*a, **k): raise OSError('no route to host')
    monkeypatch.setattr(hub, 'download_file', offline)
    with pytest.raises(hub.WeightsNotFound) as e: hub.get_weights(wf.name)
    msg = str(e.value)
    for part in (str(tmp_path/'cache'/'weights'/'sr'/'tiny_x2.pth'), 'TISR_WEIGHTS', wf.sha256, 'no route to host'):
        assert part in msg


def test_no_url_means_local_only(env):
    tmp_path, _ = env
    with pytest.raises(hub.WeightsNotFound, match='no official URL') as e: hub.get_weights('lpips_alexnet_features')
    assert str(tmp_path/'cache'/'weights'/'lpips'/'alexnet_features.pth') in str(e.value)


def test_search_order_and_renamed_copy(env, monkeypatch):
    tmp_path, wf = env
    local, tw = tmp_path/'local', tmp_path/'tw'/'deep'/'er'
    local.mkdir(); tw.mkdir(parents=True)
    (local/'tiny_x2.pth').write_bytes(b'tiny weights')
    (tw/'TINY-renamed.pth').write_bytes(b'tiny weights')
    monkeypatch.setenv('TISR_WEIGHTS', str(tmp_path/'tw'))
    assert hub.get_weights(wf.name, local_dir=local) == local/'tiny_x2.pth'
    assert hub.get_weights(wf.name) == tw/'TINY-renamed.pth'      # found by sha256, nothing downloaded
    assert not (tmp_path/'cache'/'weights').exists()


def test_corrupt_copy_names_file_and_hashes(env, monkeypatch):
    tmp_path, wf = env
    bad = tmp_path/'tw'/'sr'/'tiny_x2.pth'
    bad.parent.mkdir(parents=True); bad.write_bytes(b'corrupted!')
    monkeypatch.setenv('TISR_WEIGHTS', str(tmp_path/'tw'))
    with pytest.raises(hub.ChecksumError) as e: hub.get_weights(wf.name)
    msg = str(e.value)
    assert str(bad) in msg and wf.sha256 in msg and sha256_file(bad) in msg


def test_unknown_name_and_missing_folder(env, tmp_path):
    with pytest.raises(ValueError, match='valid: .*cfsr_x4'): hub.get_weights('cfsr_x5')
    with pytest.raises(NotADirectoryError, match='nowhere'): hub.get_weights('tiny_x2', local_dir=tmp_path/'nowhere')


def test_sha256_is_cached(tmp_path, monkeypatch):
    f = tmp_path/'w.pth'; f.write_bytes(b'abc')
    calls = []
    monkeypatch.setattr(hub, 'sha256_file', lambda p: calls.append(p) or sha256_file(p))
    h = hub.file_sha256(f)
    assert hub.file_sha256(f) == h and len(calls) == 1
    f.write_bytes(b'abcd')                                     # new size -> hashed again
    assert hub.file_sha256(f) != h and len(calls) == 2


@pytest.mark.skipif(env_dir('TISR_WEIGHTS') is None, reason='set TISR_WEIGHTS to the shared weights folder')
def test_registered_files_match_shared_folder():
    folder = env_dir('TISR_WEIGHTS')
    sums = dict(l.split()[::-1] for l in (folder/'sha256sums.txt').read_text().splitlines() if l.strip())
    shared = [wf for wf in hub.WEIGHTS.values() if str(wf.relpath) in sums]   # unfetchable families are not there
    assert {'cfsr_x4', 'lpips_alexnet_features'} <= {wf.name for wf in shared}
    for wf in shared:
        assert sums[str(wf.relpath)] == wf.sha256
        assert hub.get_weights(wf.name, download=False) == folder/wf.relpath
