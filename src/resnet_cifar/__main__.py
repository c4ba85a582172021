import sys

from resnet_cifar.cli import main

sys.exit(main())
