"""`train`'s options in their groups: the data (`TrainingData`), the run (`RunOptions`), the recipe."""

import pytest

from keras_resnext import jobs
from keras_resnext.jobs import train_options


def test_names_stand_for_their_groups_with_defaults():
    data, run, recipe_settings = train_options.grouped("folder:pets", "runs/pets", {})
    assert data == jobs.TrainingData("folder:pets") and data.val_split == 0.2 and data.service is None
    assert run == jobs.RunOptions(output="runs/pets") and (run.seed, run.precision) == (0, "auto")
    assert recipe_settings == {}
    assert train_options.grouped(jobs.TrainingData("cifar10", image_size=32), None, {})[:2] == (
        jobs.TrainingData("cifar10", image_size=32), jobs.RunOptions())


def test_the_former_keywords_still_work_for_a_release_each_in_its_group():
    former = dict(output="runs/x", seed=3, verbose=0, image_size=64, data_service="grpc://h:1", schedule="cosine")
    with pytest.deprecated_call(match="output, seed, verbose, image_size, data_service, schedule"):
        data, run, recipe_settings = train_options.grouped("digits", None, former)
    assert data == jobs.TrainingData("digits", image_size=64, service="grpc://h:1")
    assert run == jobs.RunOptions("runs/x", seed=3, verbose=0)
    assert recipe_settings == {"schedule": "cosine"}
    # Beside an object, a former keyword changes that field only.
    with pytest.deprecated_call():
        data, run, _ = train_options.grouped(jobs.TrainingData("digits", strict=True), jobs.RunOptions(seed=5),
                                             {"val_split": 0.1, "overwrite": True})
    assert data == jobs.TrainingData("digits", strict=True, val_split=0.1)
    assert run == jobs.RunOptions(seed=5, overwrite=True)


def test_bad_groups_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="`dataset` must be a TrainingData or a string; received 42"):
        jobs.train(dataset=42, run=str(tmp_path / "a"))
    with pytest.raises(ValueError, match="`run` must be a RunOptions or a string"):
        jobs.train(run={"output": str(tmp_path / "b")})
    with pytest.raises(ValueError, match="A data set is named by a string"):
        jobs.TrainingData("")
    with pytest.raises(TypeError, match="unexpected keyword arguments: bogus"):
        jobs.train(bogus=1)
    assert not list(tmp_path.iterdir())  # nothing written
