"""Learning to decide: rewards, the gymnasium environment, episode runners (and, to come, the
rollout buffer, PPO, the vectorized trainer, config and checkpoints).
"""
