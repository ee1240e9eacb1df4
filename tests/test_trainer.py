"""The shared training loop: seeded, resumable to the bit, with run log, plot and atomic checkpoints."""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models.codec import load_codec
from training.codec_stage import TINY, CodecStage
from training.train_cli import TRAIN_FLAGS, TrainSettingsError, resolve_settings
from training.trainer import RunFolder, TrainConfig, Trainer, learning_rate

TINY_TRAIN = TrainConfig(steps=4, batch_size=2, lr_warmup_steps=1, log_every=1, checkpoint_every=2)


def trainer(run_dir) -> Trainer:
    return Trainer(CodecStage(TINY), TINY_TRAIN, run_dir, progress=False)


def weights(t: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in t.model.state_dict().items()}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """A tiny codec run of 4 steps, straight through (2 autoencoder steps, then quantised ones)."""
    run = trainer(tmp_path_factory.mktemp("straight"))
    run.run()
    return run


class Killed(Exception):
    pass


def kill_after(step: int):
    def on_step(done: int) -> None:
        if done == step:
            raise Killed

    return on_step


def test_resumed_run_equals_uninterrupted_run(uninterrupted, tmp_path):
    first = trainer(tmp_path)
    with pytest.raises(Killed):
        first.run(on_step=kill_after(3))  # the last checkpoint is step 2
    second = trainer(tmp_path)
    assert second.resume() and second.step == 2
    second.run()
    straight, resumed = weights(uninterrupted), weights(second)
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name
    assert [r["step"] for r in second.folder.read_log()] == [1, 2, 3, 4]
    assert [r["loss"] for r in second.folder.read_log()] == [r["loss"] for r in uninterrupted.folder.read_log()]


def test_batches_made_ahead_in_a_thread_change_nothing(uninterrupted, tmp_path):
    """The loop makes step s+1's batch while step s trains; the weights are those of making it in turn."""
    in_turn = Trainer(CodecStage(TINY), TINY_TRAIN, tmp_path, progress=False, prefetch=False)
    in_turn.run()
    for name, value in weights(uninterrupted).items():
        assert torch.equal(value, in_turn.model.state_dict()[name]), name


def test_batches_made_by_worker_processes_change_nothing(uninterrupted, tmp_path):
    """With data_workers a DataLoader's processes make the batches (a GPU run); same steps, same weights."""
    workers = Trainer(CodecStage(TINY), dataclasses.replace(TINY_TRAIN, data_workers=2), tmp_path, progress=False)
    workers.run(until=2)
    assert workers.step == 2
    workers.run()  # a second run of the loop starts its workers at the step it is at
    for name, value in weights(uninterrupted).items():
        assert torch.equal(value, workers.model.state_dict()[name]), name


def test_run_folder_holds_log_plot_and_loadable_checkpoint(uninterrupted):
    folder = uninterrupted.folder
    assert folder.plot.stat().st_size > 0
    latest = folder.latest()
    assert latest.name == "step-0000004"
    assert {"config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json"} <= {
        p.name for p in latest.iterdir()
    }
    codec = load_codec(latest)  # a training checkpoint is a model checkpoint too
    assert torch.equal(codec.state_dict()["quantizer.layers.0.embed"], uninterrupted.model.quantizer.layers[0].embed)
    assert len(list(folder.checkpoints.glob("step-*"))) <= 2
    assert not list(folder.checkpoints.glob(".*"))
    assert "codes_used_q0" in folder.read_log()[-1]


def test_learning_rate_warms_up_then_decays():
    config = TrainConfig(steps=100, lr=1.0, lr_warmup_steps=10, min_lr_ratio=0.1)
    assert learning_rate(config, 0) == pytest.approx(0.1)
    assert learning_rate(config, 9) == pytest.approx(1.0)
    assert learning_rate(config, 100) == pytest.approx(0.1)
    assert learning_rate(config, 50) < learning_rate(config, 20)


def cli_args(**given) -> argparse.Namespace:
    base = {k: None for k in (*TRAIN_FLAGS, "preset")}
    return argparse.Namespace(stage="codec", run_dir="run", **{**base, **given})


def test_numeric_flags_out_of_range_are_refused_in_one_line():
    for flag, value in (("data_workers", -1), ("threads", 0), ("batch_size", 0), ("lr", 0.0)):
        with pytest.raises(TrainSettingsError, match=f"--{flag.replace('_', '-')} must be"):
            resolve_settings(cli_args(**{flag: value}), None)
    assert resolve_settings(cli_args(data_workers=0), None)["train"]["data_workers"] == 0


def test_resume_keeps_stored_settings_and_refuses_contradictions():
    stored = resolve_settings(cli_args(preset="tiny", batch_size=3), None)
    assert stored["train"]["batch_size"] == 3 and stored["stage_config"]["seconds"] == TINY.seconds
    assert resolve_settings(cli_args(), stored) == stored
    assert resolve_settings(cli_args(steps=99, threads=2), stored)["train"]["steps"] == 99
    with pytest.raises(TrainSettingsError, match="--batch-size 3"):
        resolve_settings(cli_args(batch_size=4), stored)
    with pytest.raises(TrainSettingsError, match="preset"):
        resolve_settings(cli_args(preset="default"), stored)
    with pytest.raises(TrainSettingsError, match="no preset"):
        resolve_settings(cli_args(preset="huge"), None)


def test_path_flags_set_text_fields_only():
    """--codec names a checkpoint for the speech-LM stages; the codec stage's `codec` is its config: refused."""
    with pytest.raises(TrainSettingsError, match="takes no --codec"):
        resolve_settings(cli_args(preset="tiny", codec="some/folder"), None)
    stored = resolve_settings(cli_args(preset="tiny", init="some/folder"), None)
    assert stored["stage_config"]["init"].endswith("some/folder")


@pytest.mark.slow
def test_torchrun_with_two_processes_trains_and_checkpoints(tmp_path):
    """The same command under torchrun: DDP on gloo, codebook statistics synchronised, rank 0 writes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [str(Path(sys.executable).with_name("torchrun")), "--nproc-per-node", "2", "-m", "training.train_cli",
               "codec", "--preset", "tiny", "--run-dir", str(tmp_path), "--no-progress"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    codec = load_codec(tmp_path / "checkpoints" / "step-0000004")
    assert codec.config == TINY.codec
    assert [row["step"] for row in RunFolder(tmp_path).read_log()] == [1, 2, 3, 4]


def test_latest_link_points_at_the_newest_checkpoint(uninterrupted):
    link = uninterrupted.folder.checkpoints / "latest"
    assert link.is_symlink() and link.resolve() == uninterrupted.folder.latest().resolve()
    assert load_codec(link).config == TINY.codec


def test_sigterm_stops_after_the_step_with_a_checkpoint_and_the_run_resumes(uninterrupted, tmp_path):
    import signal

    first = trainer(tmp_path)
    first.run(on_step=lambda done: os.kill(os.getpid(), signal.SIGTERM) if done == 3 else None)
    assert first.step == 3 and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored
    second = trainer(tmp_path)
    assert second.resume() and second.step == 3  # step 3 was not due for a checkpoint: written on the stop
    second.run()
    for name, tensor in weights(uninterrupted).items():
        assert torch.equal(tensor, weights(second)[name]), name


def test_a_pause_is_not_counted_as_training_time(tmp_path):
    """A run stopped (SIGSTOP, as benches beside a run pause it) and continued: the step the pause fell
    into counts as long as the step before it, so model cards report training time, not pauses."""
    import signal
    import time

    run = trainer(tmp_path)
    train_step = run.train_step

    def paused_in_step_2(step: int, batches):
        metrics = train_step(step, batches)
        if step == 2:
            time.sleep(2.0)  # the time it stood stopped
            os.kill(os.getpid(), signal.SIGCONT)  # what a stopped process is sent to go on
        return metrics

    run.train_step = paused_in_step_2
    run.run()
    assert run.step == 4 and run.seconds < 2.0
    assert signal.getsignal(signal.SIGCONT) is signal.SIG_DFL  # handler restored


def test_vocos_recipe_keeps_the_initial_encoder_and_codebooks(uninterrupted, tmp_path):
    """--preset vocos --init: the tokens stay those of the starting codec; only the new decoder learns."""
    start = uninterrupted.folder.latest()
    config = dataclasses.replace(TINY, codec=dataclasses.replace(TINY.codec, decoder="vocos", vocos_dim=16,
                                                                 vocos_layers=2),
                                 init=str(start), freeze_encoder=True)
    run = Trainer(CodecStage(config), TINY_TRAIN, tmp_path, progress=False)
    before = weights(run)
    run.run()
    after = weights(run)
    initial = load_codec(start).state_dict()
    for name, value in after.items():
        if name.startswith(("encoder.", "quantizer.")):
            assert torch.equal(value, initial[name]), name
    assert any(not torch.equal(after[n], before[n]) for n in after if n.startswith("decoder."))


def test_until_stops_with_a_checkpoint_on_the_same_schedule(uninterrupted, tmp_path):
    first = trainer(tmp_path)
    first.run(until=3)
    assert first.step == 3 and first.folder.latest().name == "step-0000003"
    second = trainer(tmp_path)
    assert second.resume() and second.step == 3
    second.run()
    straight, resumed = weights(uninterrupted), weights(second)
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name


def test_init_from_a_codec_with_the_same_decoder_takes_the_decoder_too(tmp_path):
    from models.codec import Codec, save_codec

    vocos = dataclasses.replace(TINY.codec, decoder="vocos", vocos_dim=16, vocos_layers=2)
    torch.manual_seed(3)
    save_codec(Codec(vocos), tmp_path / "start")
    model = CodecStage(dataclasses.replace(TINY, codec=vocos, init=str(tmp_path / "start"))).build_model()
    start = load_codec(tmp_path / "start").state_dict()
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())  # not frozen: all three parts train
