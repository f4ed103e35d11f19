"""The migration itself: the guide's steps, dump/restore strategies, roles."""
