"""The GAN generators' search space: operations, cells, genotypes, generators, discriminator."""
