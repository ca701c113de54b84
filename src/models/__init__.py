"""The network, the loss choices and the LightningModule that trains them."""
