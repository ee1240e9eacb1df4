"""`duplex release`: a training checkpoint becomes a shipped folder with fp16 weights and a model card."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch

from duplex.cli import main
from models.checkpoint import write_json
from models.codec import load_codec
from training.codec_stage import PRESETS, TINY, CodecStage
from training.trainer import TrainConfig, Trainer


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = Trainer(CodecStage(TINY), TrainConfig(steps=4, batch_size=2, lr_warmup_steps=1), tmp_path_factory.mktemp("run"),
                  progress=False)
    run.run(until=3)
    return run


def test_release_writes_half_weights_that_load_and_a_card(tiny_run, tmp_path, capsys):
    write_json(tiny_run.folder.root / "run.json", {
        "stage": "codec", "preset": "tiny", "stage_config": {"init": ""},
        "train": {**dataclasses.asdict(PRESETS["tiny"][1]), "seed": 5},
    })
    (tmp_path / "bench.txt").write_text("STOI of resynthesis: 0.5\n")
    dest = tmp_path / "codec"
    assert main(["release", str(tiny_run.folder.latest()), str(dest), "--fp16", "--metrics",
                 str(tmp_path / "bench.txt"), "--status", "Interim: the STOI bar is not met."]) == 0
    shipped = load_codec(dest)
    trained = tiny_run.model.state_dict()
    for name, value in shipped.state_dict().items():
        assert torch.allclose(value, trained[name].half().float()), name
    card = (dest / "README.md").read_text()
    assert "3 of 4 scheduled steps" in card
    assert "duplex train codec --preset tiny --seed 5 --until 3" in card  # tiny's own steps, batch and lr
    assert "STOI of resynthesis: 0.5" in card
    assert "## Status\n\nInterim: the STOI bar is not met." in card


def test_the_card_says_where_the_preset_has_changed_since_the_run(tiny_run, tmp_path):
    tiny = dataclasses.asdict(PRESETS["tiny"][0])  # its autoencoder_steps differ from the default, noise_prob not
    old = {k: v for k, v in tiny.items() if k not in ("noise_prob", "autoencoder_steps")} | {"seconds": tiny["seconds"] * 2}
    write_json(tiny_run.folder.root / "run.json", {
        "stage": "codec", "preset": "tiny", "stage_config": old, "train": dataclasses.asdict(PRESETS["tiny"][1]),
    })
    dest = tmp_path / "codec"
    assert main(["release", str(tiny_run.folder.latest()), str(dest)]) == 0
    card = (dest / "README.md").read_text()
    assert "has changed since the run that ended at step 3" in card
    assert f"autoencoder_steps is {tiny['autoencoder_steps']} now (the run predates it)" in card
    assert "noise_prob" not in card  # added since, at its default: what the run did before it existed
    assert f"seconds was {tiny['seconds'] * 2}, is {tiny['seconds']} now" in card
    assert "codec.n_q" not in card  # unchanged nested settings are not listed


def test_release_refuses_a_folder_that_is_not_a_training_checkpoint(tmp_path, capsys):
    (tmp_path / "ckpt").mkdir()
    assert main(["release", str(tmp_path / "ckpt"), str(tmp_path / "out")]) == 1
    assert "not a training checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_listen_ctc_run_ships_its_encoder_started_from_a_shipped_folder(tiny_parts, tmp_path):
    """The stage's CTC head stays behind; the card names the shipped encoder it started from."""
    from models.listen_encoder import load_listen_encoder
    from training.listen_ctc_stage import ListenCTCStage, ListenCTCStageConfig

    shipped = tmp_path / "checkpoints" / "listen"
    shutil.copytree(tiny_parts / "listen", shipped)
    (shipped / "README.md").write_text("# the shipped encoder's card\n")
    config = ListenCTCStageConfig(init=str(shipped), seconds=2.56)
    run = Trainer(ListenCTCStage(config), TrainConfig(steps=2, batch_size=2, lr_warmup_steps=1), tmp_path / "run",
                  progress=False)
    run.run()
    write_json(run.folder.root / "run.json", {
        "stage": "listen-ctc", "preset": "tiny", "stage_config": dataclasses.asdict(config),
        "train": dataclasses.asdict(TrainConfig(steps=2, batch_size=2, lr_warmup_steps=1, log_every=1)),
    })
    dest = tmp_path / "checkpoints" / "listen-ctc"
    assert main(["release", str(run.folder.latest()), str(dest)]) == 0
    run.model.eval()
    wav = torch.zeros(1, 2 * 1280)
    torch.testing.assert_close(load_listen_encoder(dest).encode(wav), run.model.encoder.encode(wav))
    card = (dest / "README.md").read_text()
    assert "Started from the shipped `checkpoints/listen`" in card
    assert "duplex train listen-ctc --preset tiny --init checkpoints/listen" in card
