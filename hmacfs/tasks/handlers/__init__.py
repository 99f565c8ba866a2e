"""The built-in task handlers; importing this package registers them all."""

from hmacfs.tasks.handlers import archives, encryption, files, images, migration

__all__ = ["archives", "encryption", "files", "images", "migration"]
