"""NVlabs (stylegan2-ada-pytorch) checkpoints: name map, the safe unpickler, errors, equivalence.

The NVlabs-named state dicts and network pickles are built here: from our own networks
through the inverse name map, and pickled the way ``torch_utils.persistence`` pickles
(a reduce call of ``torch_utils.persistence._reconstruct_persistent_obj(meta)``, written
with stand-in modules that are removed before reading).  ``test_equals_nvlabs_networks``
compares with NVlabs' own code when ``SG2ADA_DIR`` names a checkout of it.
"""

import copy
import math
import os
import pickle
import sys
import types

import numpy as np
import pytest
import torch

from core.errors import UserError
from lightning_modules.nets.nvlabs_import import (
    build_discriminator,
    build_generator,
    discriminator_state_dict_to_nvlabs,
    generator_state_dict_to_nvlabs,
    infer_generator_kwargs,
    load_nvlabs,
    read_network_pickle,
)
from lightning_modules.nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator

G_KW = dict(z_dim=8, w_dim=8, resolution=16, img_channels=3, channel_base=64, channel_max=8, mapping_layers=2)
D_KW = dict(resolution=16, img_channels=3, channel_base=64, channel_max=8, mbstd_group_size=2)
#: NVlabs' init kwargs describing the same networks.
NV_G_KW = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3,
               mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=64, channel_max=8))  # fmt: skip
NV_D_KW = dict(c_dim=0, img_resolution=16, img_channels=3, channel_base=64, channel_max=8,
               epilogue_kwargs=dict(mbstd_group_size=2))  # fmt: skip


def _randomised(module, seed):
    """Every saved tensor random (noise strengths and w_avg included; not the FIR filters)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not name.endswith("resample_filter"):
                tensor.copy_(torch.randn(tensor.shape, generator=gen))
    return module.eval()


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return _randomised(StyleGAN2Generator(**G_KW), 1), _randomised(StyleGAN2Discriminator(**D_KW), 2)


def _with_filters(nv_sd, names):
    """NVlabs' state dicts also hold the [1, 3, 3, 1] filter buffers (persistent there)."""
    f = torch.tensor([1.0, 3.0, 3.0, 1.0])
    f = torch.outer(f, f) / 64
    out = dict(nv_sd)
    out.update({name: f.clone() for name in names})
    return out


# ---------------------------------------------------------------------------------- name map
def test_generator_names_and_round_trip(nets):
    G, _ = nets
    nv = generator_state_dict_to_nvlabs(G.state_dict())
    ours = G.state_dict()
    assert nv["mapping.fc1.bias"] is not None and "mapping.layers.1.bias" not in nv
    assert torch.equal(nv["synthesis.b8.conv0.weight"], ours["synthesis.blocks.1.conv0.weight"].flip([2, 3]))
    assert torch.equal(nv["synthesis.b8.conv1.weight"], ours["synthesis.blocks.1.conv1.weight"])  # not flipped
    assert nv["synthesis.b16.conv1.noise_const"].shape == (16, 16)
    assert torch.equal(nv["synthesis.b4.conv1.noise_strength"], ours["synthesis.blocks.0.conv1.noise.strength"])
    nv = _with_filters(nv, ["synthesis.b8.resample_filter", "synthesis.b8.conv0.resample_filter"])
    back = build_generator(nv, NV_G_KW)
    assert back.state_dict().keys() == ours.keys()
    for key, value in back.state_dict().items():
        assert torch.equal(value, ours[key]), key
    z = torch.randn(3, 8)
    assert torch.equal(back(z, truncation_psi=0.6, noise_mode="const"), G(z, truncation_psi=0.6, noise_mode="const"))


def test_discriminator_names_and_round_trip(nets):
    _, D = nets
    nv = discriminator_state_dict_to_nvlabs(D.state_dict(), 16)
    assert {"b16.fromrgb.weight", "b8.skip.weight", "b4.conv.weight", "b4.fc.bias", "b4.out.weight"} <= set(nv)
    assert torch.equal(nv["b8.conv0.weight"], D.state_dict()["blocks.1.conv0.weight"])
    back = build_discriminator(_with_filters(nv, ["b16.conv1.resample_filter"]), NV_D_KW)
    x = torch.randn(4, 3, 16, 16)
    assert torch.equal(back(x), D(x))


def test_shapes_infer_the_configuration(nets):
    G, _ = nets
    kw = infer_generator_kwargs(generator_state_dict_to_nvlabs(G.state_dict()))
    assert {k: kw[k] for k in G_KW} == G_KW
    assert kw["architecture"] == "skip" and kw["noise_injection"] == "eni"
    # channel_base 100 at 16 px, max 16: channels 16, 12, 6; the smallest base that fits is 96
    odd = StyleGAN2Generator(8, 8, 16, 3, channel_base=100, channel_max=16, mapping_layers=1)
    kw = infer_generator_kwargs(generator_state_dict_to_nvlabs(odd.state_dict()))
    assert (kw["channel_base"], kw["channel_max"], kw["mapping_layers"]) == (96, 16, 1)
    rebuilt = build_generator(generator_state_dict_to_nvlabs(odd.state_dict()))
    assert [b.conv1.weight.shape[0] for b in rebuilt.synthesis.blocks] == [16, 12, 6]


def test_mapping_lr_multiplier_is_folded_into_the_weights():
    """A layer of NVlabs' mapping with lr multiplier 0.02: y = lrelu(x W^T 0.02 / sqrt(in) + 0.02 b) sqrt(2)."""
    G = _randomised(StyleGAN2Generator(**dict(G_KW, mapping_layers=1)), 3)
    nv = generator_state_dict_to_nvlabs(G.state_dict())
    kw = copy.deepcopy(NV_G_KW)
    kw["mapping_kwargs"] = dict(num_layers=1, lr_multiplier=0.02)
    ours = build_generator(nv, kw)
    z = torch.randn(5, 8)
    x = z / z.square().mean(dim=1, keepdim=True).add(1e-8).sqrt()
    w, b = nv["mapping.fc0.weight"], nv["mapping.fc0.bias"]
    expected = torch.nn.functional.leaky_relu(x @ (w * 0.02 / math.sqrt(8)).T + b * 0.02, 0.2) * math.sqrt(2)
    torch.testing.assert_close(ours.mapping(z, broadcast=False), expected, rtol=1e-5, atol=1e-6)


def test_discriminator_options_from_init_kwargs(nets):
    _, D = nets
    nv = discriminator_state_dict_to_nvlabs(D.state_dict(), 16)
    kw = dict(NV_D_KW, conv_clamp=256, epilogue_kwargs=dict(mbstd_group_size=None))
    back = build_discriminator(nv, kw)
    clamps = {n: m.conv_clamp for n, m in back.named_modules() if hasattr(m, "conv_clamp") and n}
    assert clamps["blocks.0.fromrgb"] == clamps["blocks.1.conv1"] == clamps["conv"] == 256
    assert clamps["blocks.0.skip"] is None  # NVlabs does not clamp the residual skip
    x = torch.randn(6, 3, 16, 16)
    whole = StyleGAN2Discriminator(**dict(D_KW, mbstd_group_size=6))  # one group of 6 = the whole batch
    whole.load_state_dict(D.state_dict())
    torch.testing.assert_close(back(x), whole.eval()(x))


# ---------------------------------------------------------------------------------- errors
def test_first_mismatching_tensor_is_named(nets):
    G, _ = nets
    nv = generator_state_dict_to_nvlabs(G.state_dict())
    nv["synthesis.b8.conv1.bias"] = nv["synthesis.b8.conv1.bias"][:5]
    nv["synthesis.b16.torgb.weight"] = nv["synthesis.b16.torgb.weight"][:1]
    with pytest.raises(UserError, match=r"tensor synthesis\.b8\.conv1\.bias has shape \[5\].*expects \[8\]"):
        build_generator(nv, NV_G_KW)
    wider = copy.deepcopy(NV_G_KW)
    wider["synthesis_kwargs"]["channel_max"] = 16  # the configuration does not fit the weights
    with pytest.raises(UserError, match=r"tensor synthesis\.b4\.const has shape \[8, 4, 4\].*\[16, 4, 4\]"):
        build_generator(generator_state_dict_to_nvlabs(G.state_dict()), wider)


def test_unsupported_options_are_named(nets):
    G, _ = nets
    nv = generator_state_dict_to_nvlabs(G.state_dict())
    with pytest.raises(UserError, match="c_dim=10"):
        build_generator(nv, dict(NV_G_KW, c_dim=10))
    with pytest.raises(UserError, match="resample_filter"):
        build_generator(dict(nv, **{"synthesis.b8.resample_filter": torch.ones(4, 4) / 16}), NV_G_KW)


# ---------------------------------------------------------------------------------- network pickles
def _nest(flat):
    """{'a.b.c': t} -> {'a': {'b': {'c': t}}}."""
    tree = {}
    for name, value in flat.items():
        *path, leaf = name.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


@pytest.fixture
def fake_nvlabs_modules(monkeypatch, tmp_path):
    """Stand-ins for NVlabs' ``torch_utils.persistence`` and ``dnnlib.util`` that pickle like them."""
    marker = tmp_path / "code_ran"
    persistence = types.ModuleType("torch_utils.persistence")
    util = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # never called here: the reader has its own stand-in
        raise AssertionError("NVlabs' reconstruct function was called")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj

    class EasyDict(dict):
        pass

    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    util.EasyDict = EasyDict

    class Persistent:
        def __init__(self, class_name, state):
            self.meta = dict(type="class", version=6, class_name=class_name, state=state,
                             module_src=f"open({str(marker)!r}, 'w').write('ran')\n")  # fmt: skip

        def __reduce__(self):
            return _reconstruct_persistent_obj, (self.meta,)

    def module(class_name, tree, init_kwargs=None):
        params, buffers, children = {}, {}, {}
        for key, value in tree.items():
            if isinstance(value, dict):
                children[key] = module(child_classes.get((class_name, key[0]), "Layer"), value)
            elif key in ("resample_filter", "noise_const", "w_avg"):
                buffers[key] = value
            else:
                params[key] = torch.nn.Parameter(value.clone(), requires_grad=False)
        state = dict(training=False, _parameters=params, _buffers=buffers, _modules=children,
                     _non_persistent_buffers_set=set(), weight_gain=np.float64(0.125),
                     _init_args=(), _init_kwargs=EasyDict(init_kwargs or {}))  # fmt: skip
        return Persistent(class_name, state)

    child_classes = {("Generator", "s"): "SynthesisNetwork", ("SynthesisNetwork", "b"): "SynthesisBlock"}

    def dump(g_sd, d_sd, protocol=4):
        g_kw = EasyDict(NV_G_KW, mapping_kwargs=EasyDict(NV_G_KW["mapping_kwargs"]))
        data = dict(G=module("Generator", _nest(g_sd), g_kw), D=module("Discriminator", _nest(d_sd), NV_D_KW),
                    G_ema=module("Generator", _nest(g_sd), g_kw), augment_pipe=None,
                    training_set_kwargs=EasyDict(path="x.zip"))  # fmt: skip
        monkeypatch.setitem(sys.modules, "torch_utils", types.ModuleType("torch_utils"))
        monkeypatch.setitem(sys.modules, "torch_utils.persistence", persistence)
        monkeypatch.setitem(sys.modules, "dnnlib", types.ModuleType("dnnlib"))
        monkeypatch.setitem(sys.modules, "dnnlib.util", util)
        blob = pickle.dumps(data, protocol=protocol)
        for name in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"):
            monkeypatch.delitem(sys.modules, name)  # the reader runs without them
        return blob

    return dump, marker


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_network_pickle_is_read_without_running_its_code(nets, fake_nvlabs_modules, tmp_path, protocol):
    G, D = nets
    dump, marker = fake_nvlabs_modules
    g_sd = _with_filters(generator_state_dict_to_nvlabs(G.state_dict()), ["synthesis.b8.conv0.resample_filter"])
    blob = dump(g_sd, discriminator_state_dict_to_nvlabs(D.state_dict(), 16), protocol)
    path = tmp_path / "network-snapshot-000000.pkl"
    path.write_bytes(blob)
    networks = read_network_pickle(path)
    assert set(networks) == {"G", "D", "G_ema"}
    assert networks["G"].init_kwargs["mapping_kwargs"] == {"num_layers": 2}
    assert networks["G"].state_dict.keys() == g_sd.keys()
    assert all(torch.equal(networks["G"].state_dict[k], v) for k, v in g_sd.items())
    loaded = load_nvlabs(path)
    z, x = torch.randn(2, 8), torch.randn(4, 3, 16, 16)
    assert torch.equal(loaded["G_ema"](z, noise_mode="const"), G(z, noise_mode="const"))
    assert torch.equal(loaded["D"](x), D(x))
    assert not marker.exists()


def test_a_stylegan3_generator_is_named(nets, fake_nvlabs_modules, tmp_path):
    G, D = nets
    dump, _ = fake_nvlabs_modules
    g_sd = {"synthesis.input.freqs": torch.zeros(4, 2), "synthesis.L0_36_512.weight": torch.zeros(2, 2, 3, 3)}
    path = tmp_path / "stylegan3.pkl"
    path.write_bytes(dump(g_sd, discriminator_state_dict_to_nvlabs(D.state_dict(), 16)))
    with pytest.raises(UserError, match="G.synthesis is made of Layer, not SynthesisBlocks; a StyleGAN3 network"):
        read_network_pickle(path)


def _evil(payload):
    class Evil:
        def __reduce__(self):
            return payload

    return pickle.dumps({"G": Evil()})


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval"])
def test_code_in_a_pickle_is_refused_unrun(tmp_path, kind):
    marker = tmp_path / "pwned"
    payload = (os.system, (f"touch {marker}",)) if kind == "os.system" else (eval, (f"open({str(marker)!r}, 'w')",))
    path = tmp_path / "evil.pkl"
    path.write_bytes(_evil(payload))
    name = "posix.system" if kind == "os.system" else "builtins.eval"
    with pytest.raises(UserError, match=rf"not a stylegan2-ada-pytorch network pickle: it asks for {name}"):
        load_nvlabs(path)
    assert not marker.exists()


def test_other_files_are_one_clear_error(tmp_path):
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    with pytest.raises(UserError, match="not a stylegan2-ada-pytorch network pickle .no persistent G, D or G_ema"):
        read_network_pickle(plain)
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(50))
    with pytest.raises(UserError, match="junk.pkl: not a stylegan2-ada-pytorch network pickle"):
        read_network_pickle(junk)


def test_plain_state_dict_file(nets, tmp_path):
    G, D = nets
    torch.save(generator_state_dict_to_nvlabs(G.state_dict()), tmp_path / "g.pt")
    torch.save(discriminator_state_dict_to_nvlabs(D.state_dict(), 16), tmp_path / "d.pt")
    z, x = torch.randn(2, 8), torch.randn(4, 3, 16, 16)
    assert torch.equal(load_nvlabs(tmp_path / "g.pt")["G"](z, noise_mode="const"), G(z, noise_mode="const"))
    assert torch.equal(load_nvlabs(tmp_path / "d.pt", mbstd_group_size=2)["D"](x), D(x))


# ---------------------------------------------------------------------------------- NVlabs' own code
@pytest.mark.skipif(
    not os.environ.get("SG2ADA_DIR"), reason="needs an NVlabs checkout in SG2ADA_DIR (an opt-in reference check)"
)
@pytest.mark.parametrize("resolution", [32, 128])
def test_equals_nvlabs_networks(tmp_path, monkeypatch, resolution):
    """Their G (const noise, psi 1 and 0.7) and D, pickled by their code, vs ours to 1e-4 (float32)."""
    monkeypatch.syspath_prepend(os.environ["SG2ADA_DIR"])
    if "requests" not in sys.modules:  # dnnlib/util.py imports it; nothing here downloads
        monkeypatch.setitem(sys.modules, "requests", types.ModuleType("requests"))
    dnnlib = pytest.importorskip("dnnlib")
    networks = pytest.importorskip("training.networks")
    torch.manual_seed(resolution)
    syn = dnnlib.EasyDict(channel_base=resolution * 64, channel_max=64, num_fp16_res=4, conv_clamp=256)
    G = networks.Generator(z_dim=32, c_dim=0, w_dim=32, img_resolution=resolution, img_channels=3,
                           mapping_kwargs=dnnlib.EasyDict(num_layers=2), synthesis_kwargs=syn)  # fmt: skip
    D = networks.Discriminator(c_dim=0, img_resolution=resolution, img_channels=3, channel_base=resolution * 64,
                               channel_max=64, num_fp16_res=4, conv_clamp=256)  # fmt: skip
    _randomised(G, 1), _randomised(D, 2)
    with torch.no_grad():
        for name, p in G.named_parameters():  # affine biases near their init 1, as in a trained network
            if name.endswith("affine.bias"):
                p.add_(1.0)
    path = tmp_path / "network.pkl"
    path.write_bytes(pickle.dumps(dict(G=G, D=D, G_ema=G, augment_pipe=None)))
    ours = load_nvlabs(path)
    z, x = torch.randn(4, 32), torch.randn(4, 3, resolution, resolution)
    with torch.no_grad():
        for psi in (1.0, 0.7):
            ref = G(z, None, truncation_psi=psi, noise_mode="const", force_fp32=True)
            torch.testing.assert_close(ours["G_ema"](z, truncation_psi=psi, noise_mode="const"), ref, rtol=0, atol=1e-4)
        torch.testing.assert_close(ours["D"](x), D(x, None, force_fp32=True).flatten(), rtol=0, atol=1e-4)


# ---------------------------------------------------------------------------------- python -m tools nvlabs-convert
def test_convert_command_writes_an_rni_stylegan2_checkpoint(nets, fake_nvlabs_modules, tmp_path, capsys):
    from lightning_modules.rni_stylegan2 import RNIStyleGAN2
    from tools.__main__ import main

    G, D = nets
    dump, marker = fake_nvlabs_modules
    src, out = tmp_path / "network.pkl", tmp_path / "converted.ckpt"
    g_sd, d_sd = generator_state_dict_to_nvlabs(G.state_dict()), discriminator_state_dict_to_nvlabs(D.state_dict(), 16)
    src.write_bytes(dump(g_sd, d_sd))
    assert main(["nvlabs-convert", str(src), str(out)]) == 0
    assert "RNIStyleGAN2 (eni), 16 px, z 8, w 8, channel_base 64, channel_max 8" in capsys.readouterr().out
    module = RNIStyleGAN2.load_from_checkpoint(out, map_location="cpu", weights_only=True).eval()
    assert module.hparams["mbstd_group_size"] == 2 and not marker.exists()
    z, x = torch.randn(2, 8), torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        ws = module.mapping(z, ema=True, truncation_psi=0.5)
        expected = G(z, truncation_psi=0.5, noise_mode="const")
        assert torch.equal(module.synthesize(ws, ema=True, noise_mode="const"), expected)
        assert torch.equal(module.discriminator(x), D(x))
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(_evil((os.system, ("true",))))
    assert main(["nvlabs-convert", str(evil), str(tmp_path / "x.ckpt")]) == 2
    assert "it asks for posix.system" in capsys.readouterr().err


def test_init_kwargs_without_sizes_are_one_clear_error(nets):
    G, _ = nets
    nv = generator_state_dict_to_nvlabs(G.state_dict())
    with pytest.raises(UserError, match="its Generator records no w_dim among its init kwargs"):
        build_generator(nv, {k: v for k, v in NV_G_KW.items() if k != "w_dim"})


def test_invert_takes_a_network_pickle(nets, fake_nvlabs_modules, tmp_path):
    """``python -m tools invert --ckpt network.pkl`` inverts through the pickle's G_ema, read without running it."""
    from torchvision.utils import save_image

    from tools.__main__ import main

    G, D = nets
    dump, marker = fake_nvlabs_modules
    src = tmp_path / "network.pkl"
    g_sd, d_sd = generator_state_dict_to_nvlabs(G.state_dict()), discriminator_state_dict_to_nvlabs(D.state_dict(), 16)
    src.write_bytes(dump(g_sd, d_sd))
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        save_image(torch.rand(3, 16, 16), folder / f"img{i}.png")
    out = tmp_path / "out"
    assert main(["invert", "--ckpt", str(src), "--images", str(folder), "--out", str(out), "--steps", "2",
                 "--perceptual", "none", "--batch-size", "2"]) == 0  # fmt: skip
    assert (out / "inversion.csv").read_text().count("\n") == 3 and not marker.exists()
