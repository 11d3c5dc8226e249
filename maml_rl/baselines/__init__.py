"""Single-task agents written in this project (next to the stable-baselines3 ones).

``naf``
    Continuous Q-learning with a normalised advantage function (NAF, Gu et al. 2016), the
    algorithm first used online at AWAKE (Kain et al., PRAB 23, 124801, 2020), with
    optional double-Q and, as PER-NAF, proportional prioritised replay.
``replay``
    Uniform and proportional prioritised (sum-tree) replay buffers (Schaul et al. 2016).

The agents expose SB3's face (``learn``, ``predict``, ``save``, ``load``,
``num_timesteps``) so the single-task pipeline can treat them like SB3 models; their model
files hold plain tensors and JSON only and are read without unpickling code.
"""
