"""Fitting a model with a recipe: the one code path that `train` and `tune` share.

A recipe is `recipe(steps_per_epoch, epochs=..., batch_size=...)`, returning
`(optimizer, loss)` or `(optimizer, loss, training.RecipeData)`
(`keras_resnext.recipes.Recipe.for_data` makes one of a recipe object). `fit` compiles
a model with it and fits it as `train` does: the training set read as one stream, the
recipe's batch mixing, colour augmentation on the device and EMA applied, so a
candidate of a search is trained exactly as a run of `train` would train it.
"""

import contextlib

from keras_resnext import training


def fit(net, recipe, train_ds, *, epochs, steps_per_epoch, batch_size, num_classes, seed=None, initial_epoch=0,
        strategy=None, frozen=None, validation_data=None, callbacks=(), verbose="auto", class_weight=None,
        apply_ema=True):
    """Compiles `net` with `recipe` over `epochs - initial_epoch` epochs and fits it on `train_ds`.

    Args:
        recipe: see the module's docstring; its schedule spans the epochs fitted here.
        train_ds: batches of `(images, labels)`; labels one-hot where the recipe's loss
            needs them. The recipe's MixUp/CutMix (`RecipeData.mix`) is applied here,
            with its own alphas, seeded by `seed`.
        steps_per_epoch: optimizer steps per epoch, as the recipe's schedule counts them.
        batch_size: the global batch, which scales the recipe's learning rate.
        strategy: a `tf.distribute` strategy to compile under (None: the default).
        frozen: freeze the backbone (True), train every layer (False) or leave it (None).
        callbacks: `fit`'s callbacks, or a function of the recipe's EMA callback (None
            without one, given as `ema=`) that returns them, for callbacks that must place it (a backup
            saves it); a list gets the EMA appended.
        apply_ema: put the recipe's average of the weights in `net` when done, as the
            recipe evaluates and ships it.

    Returns:
        `(history, recipe_data)`: `fit`'s History and the recipe's `RecipeData` (or None).
    """
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        if frozen is not None:
            training.set_backbone_trainable(net, not frozen)
        optimizer, loss, *data = recipe(steps_per_epoch, epochs=epochs - initial_epoch, batch_size=batch_size)
        recipe_data = data[0] if data else None
        trainer = _trainer(net, recipe_data, seed)
        trainer.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
        if trainer is not net:  # net evaluates and saves as if it had trained alone
            net.compile(optimizer=trainer.optimizer, loss=loss, metrics=["accuracy"])
    ema = recipe_data.ema if recipe_data is not None else None
    callbacks = callbacks(ema=ema) if callable(callbacks) else [*callbacks, *([ema] if ema is not None else [])]
    if recipe_data is not None and recipe_data.mixes:
        train_ds = recipe_data.mix(train_ds, num_classes, seed)
    history = trainer.fit(**one_stream(train_ds, recipe_data.augment_repeats if recipe_data else 1),
                          validation_data=validation_data, initial_epoch=initial_epoch, epochs=epochs,
                          class_weight=class_weight, verbose=verbose, callbacks=callbacks,
                          shuffle=False)  # the pipeline shuffles; Keras would only warn that it ignores this
    if apply_ema and ema is not None:
        ema.apply(trainer)  # the model it averaged: net's weights, and the colour layer's seed if any
    return history, recipe_data


def _trainer(net, recipe_data, seed):
    """The model `fit` trains: `net`, or with the paper's colour augmentation on the device, `net` behind it
    (`color_augmentation.with_color_on_device`)."""
    if recipe_data is None or not recipe_data.color_on_device:
        return net
    from keras_resnext.color_augmentation import with_color_on_device

    return with_color_on_device(net, seed)


def one_stream(dataset, augment_repeats=1):
    """`fit`'s `x` and `steps_per_epoch` that read `dataset` as one stream, an epoch being one pass of it
    (`1 / augment_repeats` of a pass of data loaded with repeated augmentation: as many images as a pass).

    Given a finite data set and no step count, Keras makes a new iterator of the
    pipeline at the start and at the end of every epoch, and dropping one while
    tf.data's autotuner works on it blocks for up to 0.5 s (measured: 5 to 10 of the
    main job's 20 epochs began so). Repeated, the pipeline runs on, its shuffle and
    augmentation drawn anew in every pass as before. The stream's one iterator is
    dropped when `fit` ends, and with the autotuner's thread running that wait grew
    with the iterator's age (up to 8 s at the end of the main job, in 1 of 4 runs), so
    the stream runs without it: its parallel stages take every core and its prefetch
    buffers grow on demand, which trained the main job as fast. A data set of unknown
    size is passed as it is.
    """
    import tensorflow as tf

    batches = int(dataset.cardinality())
    if batches <= 0:
        return {"x": dataset}
    options = tf.data.Options()
    options.autotune.enabled = False
    return {"x": dataset.repeat().with_options(options), "steps_per_epoch": max(batches // augment_repeats, 1)}

