"""Single-task agents and controllers that learn one optics (model-free and model-based).

``naf``
    Continuous Q-learning with a normalised advantage function (NAF, Gu et al. 2016), the
    algorithm first used online at AWAKE (Kain et al., PRAB 23, 124801, 2020), with
    optional double-Q and, as PER-NAF, proportional prioritised replay.
``replay``
    Uniform and proportional prioritised (sum-tree) replay buffers (Schaul et al. 2016).
``model_based``
    Response-matrix identification (least squares / recursive least squares), GP-MPC and
    Dyna.

The agents expose SB3's face (``learn``, ``predict``, ``num_timesteps``; NAF also ``save``
and ``load``) so the single-task pipeline can treat them like SB3 models; model files hold
plain tensors and JSON only and are read without unpickling code.
"""
