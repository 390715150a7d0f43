"""TensorBoard's HParams table: each run's settings and final figures, read back with TensorBoard's reader."""

from __future__ import annotations

from pathlib import Path

from events import read_events

from crucible_ray.training import TrainConfig, WorkerContext, prepare_training, train_worker

TINY = "hashed-ngram:buckets=4096,dim=32"


def test_a_run_writes_its_settings_and_final_figures_for_the_hparams_table(
    synthetic_world: Path, tmp_path: Path
) -> None:
    from tensorboard.plugins.hparams import plugin_data_pb2

    cfg = TrainConfig(ratio="75_15_10", steps=[20, 40], seed=3, eval_every=20, batch_size=16, encoder=TINY)
    data = prepare_training(synthetic_world, cfg).data
    train_worker(cfg, data, tmp_path, WorkerContext())
    acc = read_events(tmp_path / "tensorboard")
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert hp["seed"].number_value == 3 and hp["batch_size"].number_value == 16
    assert hp["encoder.kind"].string_value == "hashed-ngram" and hp["encoder.dim"].number_value == 32
    assert hp["steps"].string_value == "20,40" and hp["ratio"].string_value == "75_15_10"
    assert hp["pools"].string_value == "legacy,expansion,organic"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    metrics = {m.name.tag for m in experiment.metric_infos}
    assert {"hparam/retention", "hparam/generalization"} <= metrics
    # The figures are the final milestone's, as the scoreboard holds them.
    final = [e for e in acc.Scalars("hparam/retention")]
    assert len(final) == 1 and final[0].step == 40
    assert abs(final[0].value - acc.Scalars("eval/retention")[-1].value) < 1e-6
