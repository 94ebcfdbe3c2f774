"""Learning to decide: rewards, the gymnasium environment, env pools, the rollout buffer, GAE,
the recurrent PPO update, the vectorized trainer, config, checkpoints and evaluation.
"""
