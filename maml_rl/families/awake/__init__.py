"""The AWAKE electron-line family (CERN TT43): a thin adapter over ``maml_rl.envs``.

The physics, the environment, the tasks and the reference controllers stay in
``maml_rl.envs`` (and ``maml_rl.evaluation``), where scripts and tests import them; this
package gives them the family face of ``maml_rl.families.base`` (``family.FAMILY``,
``environment.AwakeEnvironment``).
"""
