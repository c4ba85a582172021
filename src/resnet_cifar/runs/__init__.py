"""Run folders and seed groups: their names (layout), writing one (writer), reading them back (reader),
continuing one (resume) and the groups of seeds (group). Nothing here trains; resnet_cifar.train writes
through the writer, and the commands read through the reader."""
