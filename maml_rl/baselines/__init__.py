"""Single-task agents and controllers that learn one optics (model-free and model-based).

``naf``
    Continuous Q-learning with a normalised advantage function (NAF, Gu et al. 2016), the
    algorithm first used online at AWAKE (Kain et al., PRAB 23, 124801, 2020), with
    optional double-Q and, as PER-NAF, proportional prioritised replay.
``sb3_offpolicy``
    TD3, SAC and DDPG from stable-baselines3: one settings dataclass per algorithm with
    documented defaults, building and training on one AWAKE task.
``replay``
    Uniform and proportional prioritised (sum-tree) replay buffers (Schaul et al. 2016).
``model_based``
    Response-matrix identification (least squares / recursive least squares), GP-MPC and
    Dyna.

The agents expose SB3's face (``learn``, ``predict``, ``num_timesteps``; NAF also ``save``
and ``load``) so the single-task pipeline (``maml_rl.agents``, ``ppo.py --algo``) can treat
them like SB3 models; model files hold
plain tensors and JSON only and are read without unpickling code.
"""
