"""The paper's optimizer step: SGD as Torch7's `optim.sgd` and `torch.optim.SGD` compute it, and its lr drops.

The ResNeXt reference code (facebookresearch/ResNeXt, `train.lua`) trains with
Torch7 `optim.sgd`: momentum 0.9, nesterov, no dampening, weight decay added to
the gradient of every parameter. `torch.optim.SGD(params, momentum=0.9,
nesterov=True, weight_decay=wd)` takes the same step. Keras' SGD takes another:
its velocity accumulates `lr * g` (an lr drop acts only as the old velocity decays)
and its weight decay is decoupled from the momentum.

The schedules the recipes step with live here too. `import keras_resnext` imports this module, so a
model saved with its optimizer loads with `keras.models.load_model` after that import alone.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_resnext")
class TorchSGD(keras.optimizers.Optimizer):
    """SGD with momentum as PyTorch and Torch7 step it (`torch.optim.SGD`, dampening 0).

    Update rule for a variable `w` with gradient `g`:

    ```python
    g = g + weight_decay * w          # L2, coupled: it goes through the momentum
    buffer = momentum * buffer + g    # a buffer of gradients, not of steps
    g = g + momentum * buffer if nesterov else buffer
    w = w - learning_rate * g         # the current lr: a drop acts at once
    ```

    The buffer starts at zero, so the first step's buffer is `g + weight_decay * w`,
    as in PyTorch. Weight decay applies to every trainable variable, BatchNorm's
    gamma and beta and biases included (as the paper's code does), unless
    `exclude_from_weight_decay` names some.

    Args:
        learning_rate: a float or a `LearningRateSchedule` (called with the
            number of steps taken so far). Defaults to `0.01`.
        momentum: float in [0, 1]. Defaults to `0.9`.
        nesterov: whether to apply Nesterov momentum. Defaults to `False`.
        weight_decay: the L2 factor added to the gradient (PyTorch's
            `weight_decay`, not Keras' decoupled one). Defaults to `0`.
        **kwargs: the other arguments of `keras.optimizers.Optimizer`
            (`clipnorm`, `use_ema`, `loss_scale_factor`, ...).
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, nesterov=False, weight_decay=0.0, name="torch_sgd",
                 **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay or None, name=name, **kwargs)
        if not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1:
            raise ValueError(f"`momentum` must be a float in [0, 1]; received {momentum!r}.")
        if nesterov and not momentum:
            raise ValueError("Nesterov momentum needs a momentum above 0 (as in torch.optim.SGD).")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentum_buffers = self.add_optimizer_variables(variables, "momentum_buffer") if self.momentum else []

    def _apply_weight_decay(self, variables):
        # Keras' hook decays the weights themselves (decoupled); here decay is part of the gradient.
        pass

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.weight_decay and self._use_weight_decay(variable):
            gradient = gradient + ops.cast(self.weight_decay, variable.dtype) * variable
        if self.momentum:
            buffer = self.momentum_buffers[self._get_variable_index(variable)]
            momentum = ops.cast(self.momentum, variable.dtype)
            new_buffer = momentum * buffer + gradient
            self.assign(buffer, new_buffer)
            gradient = gradient + momentum * new_buffer if self.nesterov else new_buffer
        self.assign_sub(variable, learning_rate * gradient)

    def get_config(self):
        config = super().get_config()
        config.update(momentum=self.momentum, nesterov=self.nesterov, weight_decay=self.weight_decay or 0.0)
        return config


@keras.saving.register_keras_serializable(package="keras_resnext")
class MultiStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`initial_learning_rate * gamma ** (number of boundaries <= step)`: PyTorch's `MultiStepLR`, per step.

    The lr drops at the step named by a boundary, as the reference does; Keras'
    `PiecewiseConstantDecay` keeps the old value one step longer (`step <= boundary`).
    """

    def __init__(self, initial_learning_rate, boundaries, gamma=0.1):
        if list(boundaries) != sorted(boundaries):
            raise ValueError(f"`boundaries` must be increasing; received {boundaries}.")
        self.initial_learning_rate, self.boundaries, self.gamma = initial_learning_rate, list(boundaries), gamma

    def __call__(self, step):
        step = ops.cast(step, "float32")
        drops = sum((ops.cast(step >= boundary, "float32") for boundary in self.boundaries), ops.zeros(()))
        return self.initial_learning_rate * ops.power(ops.cast(self.gamma, "float32"), drops)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "boundaries": self.boundaries,
                "gamma": self.gamma}


@keras.saving.register_keras_serializable(package="keras_resnext")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 over `warmup_steps`, then `schedule(step - warmup_steps)`."""

    def __init__(self, schedule, warmup_steps, peak):
        self.schedule, self.warmup_steps, self.peak = schedule, warmup_steps, peak

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = self.peak * (step + 1) / max(self.warmup_steps, 1)
        return ops.where(step < self.warmup_steps, warm, self.schedule(step - self.warmup_steps))

    def get_config(self):
        return {
            "schedule": keras.optimizers.schedules.serialize(self.schedule),
            "warmup_steps": self.warmup_steps,
            "peak": self.peak,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config, schedule=keras.optimizers.schedules.deserialize(config["schedule"]))
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_resnext")
class EpochWarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """torchvision's reference schedule: `LinearLR` warmup chained to `CosineAnnealingLR`, stepped once an epoch.

    Epoch `e` (steps `e * steps_per_epoch` onwards) trains at `peak * (warmup_factor +
    (1 - warmup_factor) * e / warmup_epochs)` while `e < warmup_epochs`, then at
    `peak * (1 + cos(pi * (e - warmup_epochs) / (epochs - warmup_epochs))) / 2`: the lr of
    each epoch as `SequentialLR(LinearLR(start_factor=0.01), CosineAnnealingLR(T_max=epochs -
    warmup))` sets it, constant within the epoch.
    """

    def __init__(self, peak, steps_per_epoch, epochs, warmup_epochs=5, warmup_factor=0.01):
        if steps_per_epoch < 1 or not 0 <= warmup_epochs < epochs:
            raise ValueError(f"EpochWarmupCosine needs steps_per_epoch >= 1 and 0 <= warmup_epochs < epochs; "
                             f"received {steps_per_epoch}, {warmup_epochs}, {epochs}.")
        self.peak, self.steps_per_epoch, self.epochs = peak, steps_per_epoch, epochs
        self.warmup_epochs, self.warmup_factor = warmup_epochs, warmup_factor

    def __call__(self, step):
        epoch = ops.floor(ops.cast(step, "float32") / self.steps_per_epoch)
        warm = self.warmup_factor + (1.0 - self.warmup_factor) * epoch / max(self.warmup_epochs, 1)
        progress = (epoch - self.warmup_epochs) / (self.epochs - self.warmup_epochs)
        cosine = 0.5 * (1.0 + ops.cos(3.141592653589793 * progress))
        return self.peak * ops.where(epoch < self.warmup_epochs, warm, cosine)

    def get_config(self):
        return {"peak": self.peak, "steps_per_epoch": self.steps_per_epoch, "epochs": self.epochs,
                "warmup_epochs": self.warmup_epochs, "warmup_factor": self.warmup_factor}
