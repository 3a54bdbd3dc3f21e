"""The parts :class:`~models.base_model.BaseModel` is made of, one job each.

- :mod:`~models.parts.config`: the options a model reads, frozen in its constructor (``frozen_config``).
- :mod:`~models.parts.devices`: the device, ``--channels_last``, ``--amp``'s autocast, ``--compile`` and DDP wrapping.
- :mod:`~models.parts.schedules`: the Adam optimisers and their learning-rate schedules.
- :mod:`~models.parts.step_guard`: the non-finite step guard (a step with a NaN or infinite loss or gradient
  changes nothing).
- :mod:`~models.parts.adversarial`: the one discriminator loss, from the model's declared ``Adversary`` terms.
- :mod:`~models.parts.checkpoints`: the networks' files and the training state of an exact resume.
"""
